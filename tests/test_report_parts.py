"""Units of the report stage: flags, statistics, size bins, provenance, figures, number formatting."""

from __future__ import annotations

import hashlib
import json
import subprocess

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.legend import Legend
from matplotlib.text import Text

from reports import figures, flags, provenance
from reports.claims import size_bins
from reports.significance import holm, paired_tests, rank_biserial
from reports.table import fmt


def test_fmt_never_prints_negative_zero_or_nan():
    assert fmt(-0.001) == "0.00" and fmt(-0.004, 2) == "0.00" and fmt(-0.01) == "-0.01"
    assert fmt(float("nan")) == "–" and fmt(None) == "–"


def test_degenerate_rule():
    table = pd.DataFrame({"pred_fg": [1.0, 2.0], "true_fg": [10.0, 10.0]})
    assert flags.degenerate(table) is True
    table["pred_fg"] = [5.0, 6.0]  # 5.5 >= 0.5 x 10
    assert flags.degenerate(table) is False
    assert flags.degenerate(pd.DataFrame({"dice": [1.0]})) is None


def test_unconverged_rule_percent_and_fraction_logs():
    rising = pd.DataFrame({"val_dice": [10, 20, 30, 40, 50, 60, 70, 80]})
    flat = pd.DataFrame({"val_dice": [10, 50, 70, 80, 80.2, 80.4, 80.3, 80.1]})
    assert flags.unconverged(rising) is True
    assert flags.unconverged(flat) is False  # last quarter within 0.5 points of the earlier best
    assert flags.unconverged(pd.DataFrame({"val_dice": [0.1, 0.2, 0.3, 0.4]})) is True  # fractions -> percent
    assert flags.unconverged(pd.DataFrame({"val_dice": [0.5, 0.5010, 0.5020, 0.5030]})) is False  # +0.2 points
    assert flags.unconverged(None) is None
    assert flags.unconverged(pd.DataFrame({"val_dice": [50.0]})) is None
    assert flags.unconverged(pd.DataFrame({"val_dice": [np.nan, np.nan]})) is None  # no validation split


def test_holm_matches_hand_computation():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_rank_biserial_and_paired_tests():
    assert rank_biserial(np.array([1.0, 2.0, 3.0])) == 1.0
    assert rank_biserial(np.array([-1.0, -2.0, 0.0])) == -1.0
    assert rank_biserial(np.zeros(4)) == 0.0
    ids = [f"i{k}" for k in range(10)]
    ref = pd.Series(np.linspace(80, 90, 10), index=ids)
    worse = ref - np.linspace(1, 5, 10)
    tied = ref.copy()
    tied.iloc[:2] -= 1.0
    result = paired_tests({"ref": ref, "worse": worse, "tied": tied}, "ref").set_index("model")
    assert result.loc["worse", "n_untied"] == 10 and result.loc["worse", "r"] == 1.0
    assert result.loc["worse", "p_holm"] < 0.05
    assert result.loc["tied", "n_untied"] == 2 and result.loc["tied", "p"] > 0.05  # 2 pairs: p >= 0.5
    assert result.loc["worse", "ci_low"] <= result.loc["worse", "median_diff"] <= result.loc["worse", "ci_high"]


def test_size_bins_are_tertiles_of_nonempty_masks():
    fg = pd.Series([0.0, 1, 2, 3, 4, 5, 6], index=list("abcdefg"))
    bins, (q1, q2), empty = size_bins(fg)
    assert empty == 1 and "a" not in bins.index
    assert (q1, q2) == pytest.approx(np.quantile([1, 2, 3, 4, 5, 6], [1 / 3, 2 / 3]))
    assert bins.value_counts().to_dict() == {"small": 2, "medium": 2, "large": 2}


def test_lock_digest_ignores_the_report_stage(tmp_path):
    lock = tmp_path / "dvc.lock"
    stages = {"train": {"cmd": "x", "outs": [{"path": "a", "md5": "1"}]}}
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {**stages, "report": {"cmd": "r"}}}))
    first = provenance.lock_digest(lock)
    expected = hashlib.sha256(json.dumps(stages, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert first == f"sha256 {expected} (1 stages, report excluded)"
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {**stages, "report": {"cmd": "changed"}}}))
    assert provenance.lock_digest(lock) == first
    assert "no missing.lock" in provenance.lock_digest(tmp_path / "missing.lock")


def test_lock_digest_follows_the_fingerprints_not_the_source_folders(tmp_path):
    lock = tmp_path / "dvc.lock"

    def digest(folder_md5: str, fingerprints_md5: str) -> str:
        fingerprint = {
            "cmd": "python -m pipeline.fingerprint",
            "deps": [{"path": "pipeline", "md5": folder_md5}],
            "outs": [{"path": "code_fingerprints.yaml", "md5": fingerprints_md5}],
        }
        lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {"fingerprint": fingerprint}}))
        return provenance.lock_digest(lock)

    assert digest("a.dir", "1") == digest("b.dir", "1")  # a comment in a module no stage runs
    assert digest("a.dir", "1") != digest("a.dir", "2")  # code a stage runs


def test_git_state_clean_dirty_and_generated_paths(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    assert provenance.git_state(tmp_path).endswith("(clean)")
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "comparison.md").write_text("generated")
    (tmp_path / "dvc.lock").write_text("stages: {}")
    assert provenance.git_state(tmp_path).endswith("(clean)")  # the pipeline's own outputs do not count
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance.git_state(tmp_path).endswith("(dirty: 1 changed paths)")


def test_versions_and_device_without_importing():
    text = provenance.versions()
    assert text.startswith("python ") and "torch " in text and "timm " in text and "segmentation-models-pytorch" in text
    assert provenance.device_text({("d", "m", 1): {"device_name": "H200"}}) == "H200 (1 runs)"
    assert "report machine" in provenance.device_text({("d", "m", 1): {}})


def _bubble_rows(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "label": [f"Model-{k}" for k in range(n)],
            "family": ["CNN"] * (n - 1) + ["Ours"],
            "params_m": 10 + np.arange(n) * 0.05,  # nearly on top of each other
            "gflops": 20 + np.arange(n) * 0.05,
            "mdice": np.linspace(60, 90, n),
            "ours": [False] * (n - 1) + [True],
        }
    )


def _label_boxes(fig):
    renderer = fig.canvas.get_renderer()
    return [Text.get_window_extent(t, renderer) for t in fig.axes[0].texts]  # the text only, not the leader line


def test_bubble_labels_never_overlap_and_area_is_proportional():
    fig = figures.bubble_chart(_bubble_rows(13))
    fig.canvas.draw()
    boxes = _label_boxes(fig)
    assert len(boxes) == 13
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (i, j)
    ax = fig.axes[0]
    assert ax.get_title() == "" and fig._suptitle is None
    sizes = ax.collections[0].get_sizes()
    np.testing.assert_allclose(sizes / _bubble_rows(13)["mdice"].to_numpy(), figures.BUBBLE_AREA_PER_POINT)
    legends = [c for c in ax.get_children() if isinstance(c, Legend)]
    titles = {lg.get_title().get_text() for lg in legends}
    assert {"Family", "mean Dice (area)"} <= titles
    texts = [t.get_text() for t in ax.texts]
    bold = [t.get_fontweight() for t in ax.texts]
    assert bold[texts.index("Model-12\n90.0")] == "bold"
    plt.close(fig)


def test_qualitative_figure_legend_dice_and_palettes():
    truth = np.zeros((16, 16), bool)
    truth[4:12, 4:12] = True
    sample = {
        "id": "x",
        "image": np.full((16, 16, 3), 100, np.uint8),
        "truth": truth,
        "preds": {"m": np.roll(truth, 2, axis=1)},
        "dice": {"m": 75.0},
    }
    for palette in ("default", "colorblind"):
        fig = figures.qualitative_grid([sample], ["m"], {"m": "Model"}, "Data", palette)
        legend = fig.legends[0]
        assert [t.get_text() for t in legend.get_texts()] == [
            "ground truth",
            "correct lesion pixels",
            "over-segmented",
            "under-segmented",
        ]
        assert "Dice 75.0" in [t.get_text() for t in fig.axes[2].texts]
        png, pdf = figures.both_formats(fig)
        assert png.startswith(b"\x89PNG") and pdf.startswith(b"%PDF")
    c = figures.OVERLAYS
    assert c["default"]["gt"] != c["default"]["tp"] and c["colorblind"]["fp"] != c["default"]["fp"]


def test_val_curves_one_line_per_model_per_dataset():
    curves = {
        "D1": {"A": (np.arange(1, 4), np.array([10.0, 20, 30])), "B": (np.arange(1, 4), np.ones(3))},
        "D2": {"A": (np.arange(1, 3), np.array([5.0, 6]))},
    }
    fig = figures.val_curves(curves, reference="A")
    assert [len(ax.lines) for ax in fig.axes[:2]] == [2, 1]
    plt.close(fig)


def test_latency_spread_forms():
    from reports.complexity import latency

    cell, what = latency({"cpu_latency_ms": 10.0, "cpu_latency_iqr_ms": 2.0, "latency_repeats": 20}, "cpu")
    assert (cell.low, cell.high, cell.kind) == (9.0, 11.0, "std") and "20 warm runs" in what
    cell, what = latency({"cpu_latency_ms": 10.0, "cpu_latency_p10_ms": 8.0, "cpu_latency_p90_ms": 13.0}, "cpu")
    assert (cell.low, cell.high) == (8.0, 13.0) and "10th–90th" in what
    assert latency({"gpu_latency_ms": None}, "gpu")[0].missing
