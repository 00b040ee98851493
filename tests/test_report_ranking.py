"""Issue 31 in the report: seeds as a level of the statistics, the ranking of the main models (ranking.md/.tex,
figures, the "ranks first" verdict of claims.md) and a rerun compared with the results recorded in git."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fakeruns import make_tree
from test_report import inputs_of

from engine.stats import summarize, two_level_bootstrap
from reports import (
    assemble,
    captions,
    claims,
    comparison,
    figures,
    ranking_figures,
    ranking_report,
    reproduction,
    summary,
)
from reports.recorded import COMMIT_CHARS, parse_batch
from reports.table import Cell, Column, Row, Table, mark_best, to_markdown

SEEDS = r"\d+\.\d\d\**†?\** ± \d+\.\d\d \(\d+\.\d\d–\d+\.\d\d\)"  # value ± std between seeds (two-level interval)


# --- seeds: a level of the statistics --------------------------------------------------------------


def test_one_seed_cells_keep_the_image_bootstrap_interval(tmp_path):
    inp = inputs_of(make_tree(tmp_path, models=("dyglnet", "unet"), n=6))
    cell = summary.metric_cell(inp, "kvasir", "dyglnet", "dice")
    recorded = inp.runs[("kvasir", "dyglnet", 42)].metrics["dice"]
    assert (cell.kind, cell.value, cell.low, cell.high) == (
        "ci",
        recorded["mean"],
        recorded["ci95_low"],
        recorded["ci95_high"],
    )
    md, _ = comparison.build(inp)
    row = next(line for line in md.splitlines() if line.startswith("| Ours | DyGLNet"))
    assert "±" not in row and re.search(r"\d+\.\d\d\**†?\** \(\d+\.\d\d–\d+\.\d\d\)", row)
    # mDice over one dataset: the image bootstrap of that dataset, as before seeds were a level
    values = inp.runs[("kvasir", "dyglnet", 42)].per_image["dice"].to_numpy()
    mdice = summary.mdice_cell(inp, "dyglnet")
    expected = summarize(values, n_boot=summary.N_BOOT, seed=0)
    assert mdice.kind == "ci" and mdice.low == pytest.approx(expected["ci95_low"])
    assert mdice.high == pytest.approx(expected["ci95_high"])


def test_three_seeds_print_the_std_between_seeds_and_the_two_level_interval(tmp_path):
    inp = inputs_of(make_tree(tmp_path, models=("dyglnet", "unet"), seeds=(1, 2, 3), n=6))
    cell = summary.metric_cell(inp, "kvasir", "dyglnet", "dice")
    per_seed = [inp.runs[("kvasir", "dyglnet", s)].per_image["dice"].to_numpy() for s in (1, 2, 3)]
    boot = two_level_bootstrap(np.array(per_seed), n_boot=summary.N_BOOT, seed=0)
    seed_means = [inp.runs[("kvasir", "dyglnet", s)].metrics["dice"]["mean"] for s in (1, 2, 3)]
    assert cell.kind == "seeds" and cell.value == pytest.approx(np.mean(seed_means))
    assert cell.spread == pytest.approx(np.std(seed_means, ddof=1)) and cell.spread > 0
    assert (cell.low, cell.high) == pytest.approx((boot["ci95_low"], boot["ci95_high"]))
    assert cell.low < cell.value < cell.high
    md, tex = comparison.build(inp)
    row = next(line for line in md.splitlines() if line.startswith("| Ours | DyGLNet"))
    assert len(re.findall(SEEDS, row)) == 6  # the six metrics of the Kvasir-SEG table, each with both
    assert "two-level bootstrap interval (seeds resampled, then test images) in brackets" in md
    assert re.search(r"\{\\scriptsize\$\\pm\$\d+\.\d\}\$\^\{\+\d+\.\d\}_\{-\d+\.\d\}\$", tex)
    assert "in brackets" not in tex
    mdice = summary.mdice_cell(inp, "dyglnet")
    assert mdice.kind == "seeds" and mdice.low < mdice.value < mdice.high and mdice.spread > 0
    claims_md = claims.build(inp)
    size = claims_md.split("### Dice by lesion size")[1].split("###")[0]
    assert re.search(SEEDS, size)  # the lesion-size bins resample seeds, then the bin's images


def test_best_and_the_dagger_follow_the_two_level_interval_not_the_std():
    def table(b: Cell) -> Table:
        a = Cell(90.0, 89.0, 91.0, "seeds", spread=5.0)  # ± std overlaps the other's, the interval does not
        return mark_best(Table([Row("a", "A"), Row("b", "B")], [Column("dice", "Dice")], [[a], [b]]))

    apart = table(Cell(80.0, 79.0, 81.0, "seeds", spread=5.0))
    assert apart.cells[0][0].rank == 1 and not apart.cells[0][0].not_separable
    assert "**90.00** ± 5.00 (89.00–91.00)" in to_markdown(apart)
    close = table(Cell(89.5, 88.0, 90.5, "seeds", spread=0.1))  # small std, overlapping intervals
    assert close.cells[0][0].not_separable


# --- the ranking in the report ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def clear(tmp_path_factory) -> Path:
    """24 test images, DyGLNet clearly best, no flagged run but AttentionUnet (D)."""
    root = tmp_path_factory.mktemp("clear")
    return make_tree(root, models=("dyglnet", "unet", "unetpp", "attention_unet"), rising=(), n=24)


def test_ranks_first_is_supported_only_with_the_interval_one_one_and_no_flag(clear, tmp_path):
    inp = inputs_of(clear)
    ranking = ranking_report.rank_models(inp)
    assert ranking.task("kvasir").n_cases == 24
    assert ranking_report.ranks_first(inp, ranking, "kvasir") == (
        "supported",
        "ranks first: supported (DyGLNet's 95% rank interval [1, 1] of 4; one seed: seed variation not measured)",
    )
    text = claims.build(inp, ranking)
    assert "Verdict (DyGLNet ranks first): supported (DyGLNet's 95% rank interval [1, 1] of 4; one seed" in text
    assert "- Ranks first: from the bootstrap of the main models' ranking" in text

    worse = make_tree(tmp_path / "worse", models=("dyglnet", "unet", "unetpp"), rising=(), n=24,
                      qualities={"dyglnet": (3, 1), "unetpp": (0, 0)})  # fmt: skip
    inp = inputs_of(worse)
    outcome, text = ranking_report.ranks_first(inp, ranking_report.rank_models(inp), "kvasir")
    assert outcome == "not supported" and text.startswith("ranks first: not supported (Unet++: rank interval [1, 1]")


def test_ranks_first_respects_the_small_sample_rule_and_the_flags(tmp_path):
    small = inputs_of(make_tree(tmp_path / "small", models=("dyglnet", "unet"), rising=(), n=12))
    assert ranking_report.ranks_first(small, ranking_report.rank_models(small), "kvasir") == (
        "inconclusive",
        "ranks first: inconclusive (n < 20: 12 images; DyGLNet's 95% rank interval [1, 1] of 2)",
    )
    flagged = make_tree(
        tmp_path / "flagged",
        models=("unet", "unetpp"),
        extra_models={"dyglnet": {"steps": 60}},
        train={"steps": 20, "epochs": None},
        rising=(),
        n=24,
    )
    inp = inputs_of(flagged)
    ranking = ranking_report.rank_models(inp)
    assert ranking.labels["dyglnet"] == "DyGLNet (B)"
    outcome, text = ranking_report.ranks_first(inp, ranking, "kvasir")
    assert outcome == "inconclusive" and "but its run is flagged: trained with another recipe (B)" in text
    md, tex = ranking_report.build(inp, ranking)
    section = md.split("## Kvasir-SEG")[1]
    assert "| DyGLNet (B) | " in section
    assert (
        "goes to a run the other tables do not rank (DyGLNet (B): trained with another recipe): not a fair winner; "
        "the first model without a flag by mean then rank is " in section
    )
    assert "DyGLNet (B)" in tex


def test_ranking_files_hold_the_rank_tables_the_tests_and_the_consensus(tmp_path):
    root = make_tree(tmp_path, datasets=("kvasir", "isic2016"), models=("dyglnet", "unet", "unetpp"), n=8)
    inp = inputs_of(root)
    ranking = ranking_report.rank_models(inp)
    md, tex = ranking_report.build(inp, ranking)
    for text in ("## Stability per dataset", "## Kvasir-SEG", "## ISIC2016", "## Consensus over the datasets"):
        assert text in md
    assert "| Model | mean Dice (%) | mean→rank | median→rank | rank→mean | test→rank | bootstrap median |" in md
    assert "Kendall's tau-b" in md and "The winner is the same under all four methods" in md
    assert "1000 resamples of the test images per dataset, seed 0" in md and "## Provenance" in md
    assert md.count("| A better than B → |") == 2
    labels = re.findall(r"\\label\{(.*)\}", tex)
    assert labels == [
        "tab:ranking-stability",
        "tab:ranking-kvasir",
        "tab:ranking-kvasir-tests",
        "tab:ranking-isic2016",
        "tab:ranking-isic2016-tests",
        "tab:ranking-consensus",
    ]
    assert "**" not in tex and tex.startswith("% Ranking of the main models")
    metrics = assemble.dvc_metrics(inp, ranking)["rank_stability"]
    assert set(metrics) == {"kvasir", "isic2016"} and metrics["kvasir"]["models"]["dyglnet"]["rank"] == 1


def test_ranking_figures_have_one_panel_per_dataset_and_their_captions(tmp_path):
    inp = inputs_of(make_tree(tmp_path / "two", datasets=("kvasir", "isic2016"), models=("dyglnet", "unet"), n=6))
    ranking = ranking_report.rank_models(inp)
    text = captions.ranking_captions(inp, ranking)
    assert set(text) == {"ranking_blob", "ranking_significance", "ranking_methods", "ranking_heatmap"}
    figs = ranking_figures.ranking_figures(ranking, inp.reference, inp.palette, text)
    for stem, fig in figs.items():
        assert figures.caption_of(fig) == text[stem] and "Datasets: Kvasir-SEG, ISIC2016. Recipe" in text[stem]
        figures.both_formats(fig)
    titles = [ax.get_title() for ax in figs["ranking_blob"].axes if ax.get_title()]
    assert titles == ["Kvasir-SEG (6 images)", "ISIC2016 (6 images)"]
    md = captions.markdown(inp, text)
    assert "](ranking_blob.png)" in md and "(ranking_heatmap.pdf)" in md and "](bubble.png)" not in md
    one = inputs_of(make_tree(tmp_path / "one", models=("dyglnet", "unet"), n=6))
    ranked = ranking_report.rank_models(one)
    assert "ranking_heatmap" not in captions.ranking_captions(one, ranked)


# --- reproduction: a rerun against the record ------------------------------------------------------


def _git(root: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false", *args]
    return subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def _rerun(root: Path, model: str, shift: float | None = None, value: float | None = None) -> None:
    """A rerun of ``model`` on Kvasir-SEG: its per-image Dice shifted (or all set to ``value``), metrics.json's
    Dice summarised again, as the evaluation writes it."""
    folder = root / "results" / "kvasir" / model / "seed42"
    table = pd.read_csv(folder / "per_image.csv", dtype={"id": str})
    table["dice"] = table["dice"] + shift if value is None else value
    table.to_csv(folder / "per_image.csv", index=False)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["dice"] = summarize(table["dice"].to_numpy(), seed=0)
    (folder / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def recorded(tmp_path) -> Path:
    """A fake tree in a git repository with every metrics.json committed, then an unrelated commit."""
    root = make_tree(tmp_path / "repo", models=("dyglnet", "unet", "unetpp"), rising=(), n=24)
    _git(root, "init", "-q")
    _git(root, "add", "params.yaml", *map(str, (root / "results").rglob("metrics.json")))
    _git(root, "commit", "-q", "-m", "record")
    (root / "notes.txt").write_text("unrelated\n")
    _git(root, "add", "notes.txt")
    _git(root, "commit", "-q", "-m", "unrelated")
    return root


def test_unchanged_results_are_the_same_as_recorded_named_by_the_commit_that_recorded_them(recorded):
    first = _git(recorded, "rev-list", "--max-parents=0", "HEAD")[:COMMIT_CHARS]
    inp = inputs_of(recorded)
    text = reproduction.build(inp, ranking_report.rank_models(inp))
    assert f"Same as recorded at `HEAD` (last changed in {first}): every compared run's metrics equal" in text
    (recorded / "more.txt").write_text("x\n")
    _git(recorded, "add", "more.txt")
    _git(recorded, "commit", "-q", "-m", "another unrelated")
    again = reproduction.build(inputs_of(recorded), ranking_report.rank_models(inp))
    assert again.split("## Provenance")[0] == text.split("## Provenance")[0]  # (the provenance names HEAD)


def test_a_rerun_shows_how_far_each_mean_moved_and_whether_it_lies_inside_the_record(recorded):
    dice = json.loads((recorded / "results/kvasir/dyglnet/seed42/metrics.json").read_text())["dice"]
    _rerun(recorded, "dyglnet", shift=0.25)  # inside its interval
    _rerun(recorded, "unetpp", value=99.0)  # far above its interval, and now first on every image
    inp = inputs_of(recorded)
    text = reproduction.build(inp, ranking_report.rank_models(inp))
    assert "Differs from the results recorded at `HEAD` (last changed in " in text and "2 of 3 compared runs" in text
    rows = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| Kvasir-SEG |")}
    assert set(rows) == {"DyGLNet", "Unet++"}
    assert f"| {dice['mean']:.2f} | {dice['mean'] + 0.25:.2f} | +0.25 | inside |" in rows["DyGLNet"]
    assert rows["Unet++"].endswith("| 99.00 | +" + rows["Unet++"].split("| +")[1].split(" |")[0] + " | outside | – |")
    assert "- Kvasir-SEG: the ranking changed: " in text
    assert "DyGLNet 1 → 2 (95% rank interval now [2, 2]: the recorded rank lies outside)" in text
    assert "Unet++ 2 → 1 (95% rank interval now [1, 1]: the recorded rank lies outside)" in text
    assert "a change lies outside the rank intervals" in text


def test_without_git_or_the_revision_the_section_is_one_line(tmp_path, recorded):
    inp = inputs_of(make_tree(tmp_path / "nogit", models=("dyglnet", "unet"), n=6))
    text = reproduction.build(inp, None)
    assert "Not compared with the results recorded at `HEAD`: not a git checkout, or git is not installed." in text
    params = yaml.safe_load((recorded / "params.yaml").read_text())
    params["report"]["compare_to"] = "v9.9"
    (recorded / "params.yaml").write_text(yaml.safe_dump(params))
    text = reproduction.build(inputs_of(recorded), None)
    assert "Not compared with the results recorded at `v9.9`: revision 'v9.9' not found in this repository." in text
    params["report"]["compare_to"] = None
    (recorded / "params.yaml").write_text(yaml.safe_dump(params))
    assert "Not compared: `report.compare_to` is null in params.yaml." in reproduction.build(inputs_of(recorded), None)


def test_git_batch_output_is_parsed_with_missing_objects():
    out = b"abc blob 3\n{}x\nHEAD:a/b missing\ndef blob 0\n\n"
    assert parse_batch(out, 3) == [b"{}x", None, b""]
