"""reports.ranking (challengeR-style ranking analysis) and engine.stats.two_level_bootstrap, on generated tables
built to have known answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau, norm, rankdata

from core.cli import run
from engine.stats import summarize, two_level_bootstrap
from reports.ranking import (
    METHODS,
    RankingInputError,
    analyse,
    claim_first_supported,
    figures,
    png_bytes,
    render_latex,
    render_markdown,
    to_json,
)
from reports.ranking.__main__ import main
from reports.ranking.analysis import (
    bootstrap_ranks,
    kendall_tau_b,
    pairwise_p_values,
    rank_frequency,
    rank_then_mean,
)
from reports.ranking.analysis import (
    test_then_rank as rank_by_tests,  # aliased: pytest would collect a test_* name
)
from reports.ranking.render import winner_sentence

REPO = Path(__file__).resolve().parents[1]


def long_table(matrices: dict[str, np.ndarray], algorithms: list[str]) -> pd.DataFrame:
    """task -> cases x algorithms matrix, as the long table (task, algorithm, case, value)."""
    rows = [
        (task, alg, f"case{c:03d}", float(m[c, a]))
        for task, m in matrices.items()
        for c in range(m.shape[0])
        for a, alg in enumerate(algorithms)
    ]
    return pd.DataFrame(rows, columns=["task", "algorithm", "case", "value"])


def clear_order(n_cases: int = 60, seed: int = 1) -> np.ndarray:
    """Four algorithms 0.05 apart in mean, case difficulty shared, small per-algorithm noise: a 0 > 1 > 2 > 3."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.8, 0.05, size=(n_cases, 1))
    return difficulty + np.array([0.15, 0.10, 0.05, 0.0]) + rng.normal(0, 0.02, size=(n_cases, 4))


ALGS4 = ["best", "second", "third", "fourth"]


def test_clear_order_is_stable_and_the_claim_is_supported():
    result = analyse(long_table({"liver": clear_order()}, ALGS4), n_boot=1000, seed=3)
    t = result.tasks["liver"]
    for method in METHODS:
        assert t.ranks[method].tolist() == [1, 2, 3, 4], method
    assert t.bootstrap.frequency[0, 0] >= 0.99
    assert t.bootstrap.interval[0].tolist() == [1, 1]
    assert claim_first_supported(result, "liver", "best")
    assert not claim_first_supported(result, "liver", "second")
    assert t.bootstrap.tau_median > 0.9
    assert "The winner is the same under all four methods: best." in render_markdown(result)


def test_exchangeable_models_have_wide_intervals_and_no_supported_claim():
    # every algorithm's values are a shuffle of the same 300 values: the same distribution and the same mean
    rng = np.random.default_rng(7)
    base = rng.normal(0.7, 0.1, size=300)
    algs = [f"m{i}" for i in range(5)]
    matrix = np.column_stack([rng.permutation(base) for _ in algs])
    result = analyse(long_table({"t": matrix}, algs), n_boot=500, seed=0)
    t = result.tasks["t"]
    widths = t.bootstrap.interval[:, 1] - t.bootstrap.interval[:, 0]
    assert (widths >= 2).all(), t.bootstrap.interval
    assert not any(claim_first_supported(result, "t", a) for a in algs)
    assert t.bootstrap.frequency[:, 0].max() < 0.8
    assert t.bootstrap.tau_median < 0.8


def test_mean_then_rank_and_rank_then_mean_disagree_on_a_constructed_table():
    # "steady" wins 9 of 10 cases by 0.01 and loses the last by 1.0: the better mean belongs to "spiky",
    # the better mean rank (and median) to "steady". "copy" equals "low" everywhere: a tie sharing rank 3.
    steady = np.r_[np.full(9, 0.51), 0.0]
    spiky = np.r_[np.full(9, 0.50), 1.0]
    low = np.full(10, 0.1)
    matrix = np.c_[steady, spiky, low, low]
    result = analyse(long_table({"t": matrix}, ["steady", "spiky", "low", "copy"]), n_boot=100)
    t = result.tasks["t"]
    assert t.ranks["mean_then_rank"].tolist() == [2, 1, 3, 3]
    assert t.ranks["rank_then_mean"].tolist() == [1, 2, 3, 3]
    assert t.ranks["median_then_rank"].tolist() == [1, 2, 3, 3]
    assert rank_then_mean(matrix).tolist() == [1, 2, 3, 3]
    sentence = winner_sentence(t)
    assert sentence.startswith("The winner changes across the four methods")
    assert "mean then rank: spiky" in sentence and "rank then mean: steady" in sentence


def test_test_then_rank_counts_significant_wins():
    rng = np.random.default_rng(0)
    n = 20
    c = rng.normal(0.5, 0.05, n)
    b = c + 0.05 + rng.uniform(0.0, 0.01, n)  # above c on every case
    a = b + 0.05 + rng.uniform(0.0, 0.01, n)  # above b on every case
    matrix = np.c_[a, b, c, c]  # the last column equals c: all differences zero
    p = pairwise_p_values(matrix)
    assert p[2, 3] == 1.0 and p[3, 2] == 1.0  # no non-zero difference: not significant, no error
    # R's wilcox.test(paired = TRUE, exact = FALSE), no ties: z = (V - n(n+1)/4 - 1/2) / sqrt(n(n+1)(2n+1)/24)
    diff = b - c - 0.054
    v = rankdata(np.abs(diff))[diff > 0].sum()
    z = (v - n * (n + 1) / 4 - 0.5) / np.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    assert pairwise_p_values(np.c_[b, c + 0.054])[0, 1] == pytest.approx(norm.sf(z), rel=1e-12)
    assert 0.001 < norm.sf(z) < 0.999  # a p of neither extreme, so the formula is really checked
    assert p[0, 1] < 0.05 and p[1, 0] > 0.5
    wins = (np.nan_to_num(p, nan=1.0) < 0.05).sum(axis=1)
    assert wins.tolist() == [3, 2, 0, 0]
    assert rank_by_tests(matrix).tolist() == [1, 2, 3, 3]
    # all differences of one sign, normal approximation with continuity correction: 5 cases give p = 0.030
    # (significant), 4 cases p = 0.0502 (not)
    assert rank_by_tests(matrix[:5]).tolist() == [1, 2, 3, 3]
    assert rank_by_tests(matrix[:4]).tolist() == [1, 1, 1, 1]


def test_missing_value_is_an_error_naming_it_unless_replaced():
    table = long_table({"t": clear_order(20)}, ALGS4)
    absent = table.drop(index=table[(table.algorithm == "third") & (table.case == "case007")].index)
    with pytest.raises(RankingInputError, match=r"task 't'.*'third'.*'case007'"):
        analyse(absent, n_boot=10)
    nan = table.copy()
    nan.loc[(nan.algorithm == "second") & (nan.case == "case003"), "value"] = np.nan
    with pytest.raises(RankingInputError, match=r"'second'.*'case003'"):
        analyse(nan, n_boot=10)
    # replaced by a value worse than any other: "third" gets a 0 on that case
    result = analyse(absent, n_boot=10, na_value=0.0)
    t = result.tasks["t"]
    assert t.data.n_replaced == 1
    assert t.data.values[7, 2] == 0.0
    assert "1 NaN, infinite or absent value(s) replaced by 0" in render_markdown(result)


def test_smaller_better_flips_the_order():
    matrix = clear_order()
    larger = analyse(long_table({"t": matrix}, ALGS4), n_boot=200).tasks["t"]
    smaller = analyse(long_table({"t": matrix}, ALGS4), smaller_better=True, n_boot=200).tasks["t"]
    for method in ("mean_then_rank", "median_then_rank", "rank_then_mean", "test_then_rank"):
        assert smaller.ranks[method].tolist() == (5 - larger.ranks[method]).tolist(), method
    assert smaller.bootstrap.interval[3].tolist() == [1, 1]


def test_two_level_bootstrap_one_seed_is_the_image_bootstrap_and_seeds_widen_it():
    rng = np.random.default_rng(5)
    images = rng.normal(0.8, 0.1, size=200)
    one = two_level_bootstrap(images[None, :], n_boot=1000, seed=4)
    plain = summarize(images, n_boot=1000, seed=4)
    assert (one["ci95_low"], one["ci95_high"]) == (plain["ci95_low"], plain["ci95_high"])
    assert one["mean"] == pytest.approx(plain["mean"]) and one["seed_std"] == 0.0
    # three seeds, each shifting every image by its own offset: the seed effect the image-only interval misses
    seeds = images[None, :] + np.array([[-0.04], [0.0], [0.04]]) + rng.normal(0, 0.01, size=(3, 200))
    three = two_level_bootstrap(seeds, n_boot=1000, seed=4)
    pooled = summarize(seeds.mean(axis=0), n_boot=1000, seed=4)
    assert three["ci95_high"] - three["ci95_low"] > 1.5 * (pooled["ci95_high"] - pooled["ci95_low"])
    assert three["seed_std"] == pytest.approx(seeds.mean(axis=1).std(ddof=1))
    assert three["mean"] == pytest.approx(seeds.mean())
    assert (three["n_seeds"], three["n_images"]) == (3, 200)


def test_vectorised_bootstrap_equals_a_slow_reference_loop():
    rng = np.random.default_rng(11)
    scores = rng.integers(0, 4, size=(12, 5)).astype(float)  # coarse values: many tied means
    n_boot = 300
    fast = bootstrap_ranks(scores, n_boot, np.random.default_rng(9))
    index = np.random.default_rng(9).integers(0, 12, size=(n_boot, 12))
    slow = np.empty((n_boot, 5), dtype=int)
    for b in range(n_boot):
        means = scores[index[b]].mean(axis=0)
        slow[b] = rankdata(-means, method="min")
    assert np.array_equal(fast, slow)
    counts = np.zeros((5, 5))
    for row in slow:
        for alg, rank in enumerate(row):
            counts[alg, rank - 1] += 1
    assert np.array_equal(rank_frequency(fast), counts / n_boot)
    observed = rankdata(-scores.mean(axis=0), method="min")
    taus = kendall_tau_b(fast, observed)
    expected = [kendalltau(row, observed).statistic for row in slow]
    assert np.allclose(taus, expected, equal_nan=True)
    assert any(len(set(row)) < 5 for row in slow)  # the data do exercise tied ranks


def write_csv(path: Path, table: pd.DataFrame) -> Path:
    table.rename(columns={"task": "dataset", "algorithm": "model", "case": "image", "value": "dice"}).to_csv(
        path, index=False
    )
    return path


def test_cli_writes_the_documented_json_markdown_and_figures(tmp_path, capsys):
    tables = {"kvasir": clear_order(30, seed=2), "isic": clear_order(25, seed=3)}
    csv = write_csv(tmp_path / "long.csv", long_table(tables, ALGS4))
    out = tmp_path / "out"
    argv = [
        str(csv),
        "--task",
        "dataset",
        "--algorithm",
        "model",
        "--case",
        "image",
        "--value",
        "dice",
        "--bootstrap",
        "200",
        "--seed",
        "1",
        "--out",
        str(out),
    ]
    assert run(main, argv) == 0
    doc = json.loads((out / "ranking.json").read_text())
    assert list(doc)[:2] == ["tasks", "consensus"]
    assert set(doc["tasks"]) == {"kvasir", "isic"}
    task = doc["tasks"]["kvasir"]
    assert task["n_cases"] == 30
    assert list(task["ranks"]) == list(METHODS)
    assert task["ranks"]["mean_then_rank"] == {"best": 1, "second": 2, "third": 3, "fourth": 4}
    boot = task["bootstrap"]
    assert boot["n"] == 200
    assert all(sum(f.values()) == pytest.approx(1.0) for f in boot["rank_frequency"].values())
    assert all(isinstance(k, str) and k.isdigit() for f in boot["rank_frequency"].values() for k in f)
    assert boot["interval_95"]["best"] == [1, 1] and isinstance(boot["median_rank"]["best"], float)
    assert 0.0 < boot["kendall_tau_median"] <= 1.0
    assert set(task["significance"]["best"]) == {"second", "third", "fourth"}
    assert task["significance"]["best"]["fourth"] < 0.05 < task["significance"]["fourth"]["best"]
    assert doc["consensus"] == {"best": 1.0, "second": 2.0, "third": 3.0, "fourth": 4.0}
    markdown = (out / "ranking.md").read_text()
    for text in ("## kvasir", "## isic", "## Consensus over tasks", "## Methods", "95% rank interval", "Holm"):
        assert text in markdown
    for stem in ("blob_kvasir", "significance_kvasir", "methods_kvasir", "blob_isic", "rank_heatmap"):
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", stem
    assert "wrote 9 files" in capsys.readouterr().out


def test_cli_missing_value_is_one_line_exit_2_and_na_value_handles_it(tmp_path):
    table = long_table({"t": clear_order(15)}, ALGS4)
    table = table.drop(index=table[(table.algorithm == "second") & (table.case == "case004")].index)
    csv = write_csv(tmp_path / "holes.csv", table)
    argv = [
        str(csv),
        "--task",
        "dataset",
        "--algorithm",
        "model",
        "--case",
        "image",
        "--value",
        "dice",
        "--bootstrap",
        "50",
        "--out",
        str(tmp_path / "out"),
    ]
    proc = subprocess.run([sys.executable, "-m", "reports.ranking", *argv], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(csv) in lines[0] and "'case004'" in lines[0] and "'second'" in lines[0]
    assert not (tmp_path / "out").exists()
    assert run(main, [*argv, "--na-value", "0"]) == 0
    assert json.loads((tmp_path / "out" / "ranking.json").read_text())["tasks"]["t"]["n_replaced"] == 1


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda a: a.__setitem__(0, "nope.csv"), "nope.csv: no such file"),
        (lambda a: a.__setitem__(a.index("dice"), "score"), "no column 'score'"),
        (lambda a: a.extend(["--bootstrap", "many"]), "invalid int value: 'many'"),
        (lambda a: a.extend(["--na-value", "nan"]), "must be a finite number, got nan"),
        (lambda a: a.extend(["--bootstrap", "0"]), "at least 1, got 0"),
    ],
    ids=["missing-file", "missing-column", "bad-number", "nan-replacement", "zero-resamples"],
)
def test_cli_user_errors_are_one_line(tmp_path, capsys, change, expected):
    csv = write_csv(tmp_path / "t.csv", long_table({"t": clear_order(8)}, ALGS4))
    argv = [
        str(csv),
        "--task",
        "dataset",
        "--algorithm",
        "model",
        "--case",
        "image",
        "--value",
        "dice",
        "--out",
        str(tmp_path / "out"),
    ]
    change(argv)
    assert run(main, argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and expected in err, err


def test_cli_non_number_in_the_table_names_the_file_and_case(tmp_path, capsys):
    table = long_table({"t": clear_order(8)}, ALGS4).astype({"value": object})
    table.loc[5, "value"] = "n/a?"
    csv = write_csv(tmp_path / "t.csv", table)
    argv = [
        str(csv),
        "--task",
        "dataset",
        "--algorithm",
        "model",
        "--case",
        "image",
        "--value",
        "dice",
        "--out",
        str(tmp_path / "out"),
    ]
    assert run(main, argv) == 2
    err = capsys.readouterr().err
    assert str(csv) in err and "'n/a?' is not a number" in err and f"'{table.loc[5, 'case']}'" in err


def test_significance_is_holm_adjusted_and_json_matches_the_result():
    result = analyse(long_table({"t": clear_order(12)}, ALGS4), n_boot=50)
    t = result.tasks["t"]
    off = ~np.eye(4, dtype=bool)
    assert (t.p_holm[off] >= t.p_values[off]).all()
    m = off.sum()
    smallest = np.nanargmin(np.where(off, t.p_values, np.nan))
    assert t.p_holm.flat[smallest] == pytest.approx(min(1.0, m * t.p_values.flat[smallest]))
    doc = to_json(result)["tasks"]["t"]
    assert doc["significance"]["best"]["third"] == t.p_holm[0, 2]


def test_latex_and_figures_are_deterministic():
    result = analyse(long_table({"a_task": clear_order(10)}, ALGS4), n_boot=50)
    latex = render_latex(result)
    assert latex.count(r"\begin{table}") == 1 and r"a\_task" in latex and "fourth" in latex
    first = {k: png_bytes(f) for k, f in figures(result).items()}
    second = {k: png_bytes(f) for k, f in figures(result).items()}
    assert set(first) == {"blob_a_task", "significance_a_task", "methods_a_task"}
    assert first == second
