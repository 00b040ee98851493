"""Units of the report stage: flags, statistics, size bins, provenance, figures, number formatting."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.colors import to_rgb
from matplotlib.legend import Legend
from matplotlib.text import Text

from reports import figures, flags, provenance
from reports.claims import rule_text, size_bins, verdict
from reports.significance import holm, paired_tests, rank_biserial
from reports.table import Cell, Column, Row, Table, fmt, mark_best


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
    first = provenance.lock_digest(lock, {"train", "report"})
    expected = hashlib.sha256(json.dumps(stages, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert first == f"sha256 {expected} (1 stages, report excluded)"
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {**stages, "report": {"cmd": "changed"}}}))
    assert provenance.lock_digest(lock, {"train", "report"}) == first
    assert provenance.lock_digest(lock).endswith("report excluded; dvc.yaml not resolved, so every entry counts)")
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
    assert provenance.git_state(tmp_path).endswith("(dirty: 1 changed paths: code.py)")


def test_git_state_names_the_first_changed_paths(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    git("mv", "a.py", "moved.py")  # a rename names its new path
    (tmp_path / "b.py").write_text("x = 2\n")
    for k in range(5):
        (tmp_path / f"new{k}.py").write_text("")
    state = provenance.git_state(tmp_path)
    assert state.endswith("(dirty: 7 changed paths: b.py, moved.py, new0.py, new1.py, new2.py and 2 more)"), state
    assert provenance.changed_paths(" M a b.py\0R  new.py\0old.py\0?? c.py\0") == ["a b.py", "new.py", "c.py"]


DVC_YAML = """
stages:
  fingerprint:
    cmd: x
  prepare:
    foreach: ${datasets}
    do: {cmd: x}
  train:
    matrix:
      dataset: ${datasets}
      model: ${models}
      seed: ${seeds}
    cmd: x
  complexity:
    foreach: ${models}
    do: {cmd: x}
  export:
    foreach: [onnx, true]
    do: {cmd: x}
  report:
    cmd: x
"""


def test_stage_names_expand_foreach_and_matrix_as_dvc_names_them(tmp_path):
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    values = {"datasets": {"kvasir": {"raw": "r"}}, "models": {"unet": {}, "dyglnet": None}, "seeds": [1, 2]}
    assert provenance.stage_names(tmp_path / "dvc.yaml", values) == {
        "fingerprint",
        "prepare@kvasir",
        *(f"train@kvasir-{m}-{s}" for m in ("unet", "dyglnet") for s in (1, 2)),
        "complexity@unet",
        "complexity@dyglnet",
        "export@onnx",
        "export@true",
        "report",
    }
    assert provenance.stage_names(tmp_path / "dvc.yaml", {"datasets": {}}) is None  # ${models} not in the params
    assert provenance.stage_names(tmp_path / "missing.yaml", values) is None


def test_lock_digest_covers_only_the_current_stages(tmp_path):
    """dvc.lock keeps the entry of a model dropped from params.yaml: it must not change the digest."""
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    values = {"datasets": {"ph2": {"raw": "r"}}, "models": {"unet": {}}, "seeds": [42]}
    current = {"train@ph2-unet-42": {"cmd": "t", "outs": [{"path": "a", "md5": "1"}]}}
    stale = {"train@ph2-oldmodel-42": {"cmd": "t", "outs": [{"path": "b", "md5": "2"}]}}
    lock = tmp_path / "dvc.lock"
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": current}))
    alone = provenance.lock_digest(lock, provenance.stage_names(tmp_path / "dvc.yaml", values))
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {**current, **stale}}))
    with_stale = provenance.lock_digest(lock, provenance.stage_names(tmp_path / "dvc.yaml", values))
    assert with_stale.split(" (")[0] == alone.split(" (")[0]
    assert with_stale.endswith("(1 stages, report excluded; 1 entries of stages no longer in dvc.yaml left out)")


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


def test_bubble_labels_never_overlap_and_area_is_proportional_to_dice():
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
    dice = _bubble_rows(13)["mdice"].to_numpy()
    np.testing.assert_allclose(sizes, figures.BUBBLE_AREA_AT_100 * dice / 100)
    legends = [c for c in ax.get_children() if isinstance(c, Legend)]
    titles = {lg.get_title().get_text() for lg in legends}
    assert {"Family", "mean Dice (area ∝ Dice)"} <= titles
    texts = [t.get_text() for t in ax.texts]
    bold = [t.get_fontweight() for t in ax.texts]
    assert bold[texts.index("Model-12\n90.0")] == "bold"
    plt.close(fig)


def test_bubble_areas_of_close_dice_values_look_close():
    """91.4 against 93.3 is a ratio of areas of 1.02, not a stretch from the smallest bubble to the largest."""
    rows = _bubble_rows(2)
    rows["mdice"] = [91.4, 93.3]
    fig = figures.bubble_chart(rows)
    small, large = fig.axes[0].collections[0].get_sizes()
    assert large / small == pytest.approx(93.3 / 91.4)
    plt.close(fig)


def test_bubble_labels_show_every_row_flag_whatever_its_letter():
    rows = _bubble_rows(4)
    rows["flags"] = [("D",), (), ("B", "U"), ("Z",)]  # Z: a flag no one has defined yet
    fig = figures.bubble_chart(rows)
    texts = [t.get_text().split("\n")[0] for t in fig.axes[0].texts]
    assert sorted(texts) == ["Model-0 (D)", "Model-1", "Model-2 (B, U)", "Model-3 (Z)"]  # placed big bubbles first
    plt.close(fig)


def test_every_figure_carries_its_caption_under_the_axes_inside_the_figure():
    caption = "What this shows. " * 40  # several lines at any figure width
    curve = (np.arange(1, 4), np.array([1.0, 2, 3]))
    truth = np.zeros((16, 16), bool)
    sample = {"id": "x", "image": np.zeros((16, 16, 3), np.uint8), "truth": truth, "preds": {"m": truth}, "dice": {}}
    made = [
        figures.bubble_chart(_bubble_rows(4), caption=caption),
        figures.qualitative_grid([sample], ["m"], {"m": "Model"}, "Data", caption=caption),
        figures.val_curves({"D": {"A": curve}}, reference="A", caption=caption),
    ]
    for fig in made:
        fig.canvas.draw()
        assert figures.caption_of(fig) == caption.strip()
        box = _points_extent(fig.texts[-1], fig)
        width, height = fig.get_size_inches() * 72
        assert 0 <= box.x0 and box.x1 <= width and 0 <= box.y0, box
        assert all(box.y1 < _points_extent(ax, fig).y0 for ax in fig.axes if ax.axison), box  # under the axes
        legends = [lg for lg in fig.legends if lg.get_visible()]
        assert all(box.y1 <= _points_extent(lg, fig).y0 for lg in legends)  # and under the figure's legend
        plt.close(fig)


def test_bubble_axis_names_the_size_the_gflops_were_counted_at():
    fig = figures.bubble_chart(_bubble_rows(3), gflops_label="GFLOPs (fvcore) at 224 × 224 (models trained at 64 × 64)")
    assert fig.axes[0].get_ylabel() == "GFLOPs (fvcore) at 224 × 224 (models trained at 64 × 64)"
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
    assert [ax.get_ylabel() for ax in fig.axes[:2]] == ["validation Dice (%)"] * 2
    plt.close(fig)


def test_training_loss_panels_say_there_is_no_validation_split():
    curves = {"D1": {"A": (np.arange(1, 4), np.array([0.9, 0.5, 0.3]))}, "D2": {"A": (np.arange(1, 3), np.ones(2))}}
    fig = figures.val_curves(curves, reference="A", losses={"D1"})
    with_loss, with_dice = fig.axes[:2]
    assert with_loss.get_ylabel() == "training loss" and figures.NO_VALIDATION in with_loss.get_title()
    assert with_dice.get_ylabel() == "validation Dice (%)" and with_dice.get_title() == "D2"
    assert figures.NO_LOG not in [t.get_text() for ax in fig.axes for t in ax.texts]
    plt.close(fig)
    fig = figures.val_curves({})
    assert figures.NO_LOG in [t.get_text() for t in fig.axes[0].texts]  # only when no log was found at all
    plt.close(fig)


def test_latency_spread_forms():
    from reports.complexity import latency

    cell, what = latency({"cpu_latency_ms": 10.0, "cpu_latency_iqr_ms": 2.0, "latency_repeats": 20}, "cpu")
    assert (cell.low, cell.high, cell.kind) == (9.0, 11.0, "std") and "20 warm runs" in what
    cell, what = latency({"cpu_latency_ms": 10.0, "cpu_latency_p10_ms": 8.0, "cpu_latency_p90_ms": 13.0}, "cpu")
    assert (cell.low, cell.high) == (8.0, 13.0) and "10th–90th" in what
    assert latency({"gpu_latency_ms": None}, "gpu")[0].missing


def test_stage_names_match_dvcs_own_for_the_projects_dvc_yaml(tmp_path):
    repo = pytest.importorskip("dvc.repo")
    from engine.params import load_params

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "params.yaml").write_text(
        "datasets: {ph2: {raw: r}, kvasir: {raw: s}}\nmodels: {unet: {}, dyglnet: {}}\nseeds: [1, 7]\n"
    )
    values = load_params(tmp_path / "params.yaml").model_dump()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(values))  # every section dvc.yaml interpolates
    (tmp_path / "dvc.yaml").write_text((root / "dvc.yaml").read_text())
    repo.Repo.init(tmp_path, no_scm=True)
    theirs = {s.name for s in repo.Repo(tmp_path).index.stages}
    assert provenance.stage_names(tmp_path / "dvc.yaml", values) == theirs
    assert "train@kvasir-dyglnet-7" in theirs


# --- claims: the verdict rule ---------------------------------------------------------------------


def _claim_table(ref: tuple[float, float, float], other: tuple[float, float, float], higher_is_better=True):
    """Two rows, one column: the reference ``ref`` and ``other`` as (value, low, high)."""
    table = Table(
        [Row("ref", "DyGLNet"), Row("other", "Unet++")],
        [Column("small", "Small", higher_is_better=higher_is_better)],
        [[Cell(*ref, "ci")], [Cell(*other, "ci")]],
    )
    return mark_best(table)


def test_claims_verdict_is_inconclusive_on_few_images_overlap_or_unconverged_runs():
    worse_overlapping = _claim_table((80.0, 70.0, 88.0), (84.0, 76.0, 90.0))
    # the issue's case: 7 images, overlapping intervals, unconverged runs (the old report said "not supported")
    text = verdict(worse_overlapping, 0, "ref", 7, {"ref", "other"}, n_seeds=3)
    assert text.startswith("Small: inconclusive (n < 20: 7 images; rank 2 of 2;"), text
    assert "overlaps Unet++'s" in text and "unconverged: DyGLNet, Unet++" in text
    better = _claim_table((90.0, 88.0, 92.0), (80.0, 78.0, 82.0))
    assert verdict(
        better, 0, "ref", 10, set(), n_seeds=3
    ) == (  # the issue's n = 10: never better, whatever the intervals
        "Small: inconclusive (n < 20: 10 images; rank 1 of 2; interval entirely better than every other model's)"
    )
    assert verdict(worse_overlapping, 0, "ref", 50, set(), n_seeds=3).startswith(
        "Small: inconclusive"
    )  # intervals overlap

    worse_separated = _claim_table((70.0, 66.0, 74.0), (84.0, 80.0, 88.0))
    assert verdict(worse_separated, 0, "ref", 50, set(), n_seeds=3) == (
        "Small: not supported (rank 2 of 2; interval entirely worse than Unet++'s)"
    )
    assert verdict(worse_separated, 0, "ref", 50, {"ref"}, n_seeds=3).startswith(
        "Small: inconclusive"
    )  # ref still rising
    assert verdict(worse_separated, 0, "ref", 50, {"other"}, n_seeds=3).startswith("Small: inconclusive")
    assert verdict(worse_separated, 0, "ref", 19, set(), n_seeds=3).startswith("Small: inconclusive")

    better_separated = _claim_table((90.0, 88.0, 92.0), (80.0, 78.0, 82.0))
    assert verdict(better_separated, 0, "ref", 20, set(), n_seeds=3) == (
        "Small: supported (rank 1 of 2; interval entirely better than every other model's)"
    )
    assert verdict(better_separated, 0, "ref", 20, {"other"}, n_seeds=3).startswith("Small: inconclusive")
    assert verdict(_claim_table((90.0, 85.0, 92.0), (88.0, 84.0, 89.0)), 0, "ref", 50, set(), n_seeds=3).startswith(
        "Small: inconclusive (rank 1 of 2; interval overlaps Unet++'s"
    )
    hd95 = _claim_table((1.0, 0.8, 1.2), (2.0, 1.7, 2.4), higher_is_better=False)  # lower is better
    assert verdict(hd95, 0, "ref", 50, set(), n_seeds=3).startswith("Small: supported")


def test_a_verdict_on_one_seed_says_that_seed_variation_was_not_measured():
    better = _claim_table((90.0, 88.0, 92.0), (80.0, 78.0, 82.0))
    assert verdict(better, 0, "ref", 20, set(), n_seeds=1) == (
        "Small: supported (rank 1 of 2; interval entirely better than every other model's; one seed: seed "
        "variation not measured)"
    )
    worse = _claim_table((70.0, 66.0, 74.0), (84.0, 80.0, 88.0))
    assert verdict(worse, 0, "ref", 50, set(), n_seeds=1).endswith("; one seed: seed variation not measured)")
    overlapping = _claim_table((80.0, 70.0, 88.0), (84.0, 76.0, 90.0))  # inconclusive anyway: no seed note
    assert "one seed" not in verdict(overlapping, 0, "ref", 50, set(), n_seeds=1)
    assert "one seed" not in verdict(better, 0, "ref", 10, set(), n_seeds=1)  # n < 20
    assert 'then says "one seed: seed variation not measured"' in rule_text("DyGLNet")


# --- figures: legends, sizes, colours -------------------------------------------------------------


def _points_extent(artist, fig):
    """Window extent of an artist, in points."""
    box = artist.get_window_extent(fig.canvas.get_renderer())
    return box.transformed(matplotlib.transforms.Affine2D().scale(72 / fig.dpi))


def _size_legend(fig):
    ax = fig.axes[0]
    return next(c for c in ax.get_children() if isinstance(c, Legend) and c.get_title().get_text().startswith("mean"))


@pytest.mark.parametrize(
    "dice",
    [[91.2, 92.0, 93.1, 93.9], [91.4, 91.45, 91.5, 91.42], [3.7, 60.0, 93.6, 64.4], [92.0, 92.0, 92.0, 92.0]],
)
def test_bubble_size_legend_is_the_same_readable_scale_whatever_the_data(dice):
    rows = _bubble_rows(4)
    rows["mdice"] = dice
    fig = figures.bubble_chart(rows)
    fig.canvas.draw()
    legend = _size_legend(fig)
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == [f"{v:g}%" for v in figures.SIZE_LEGEND]
    sizes = [h.get_markersize() for h in legend.legend_handles]
    np.testing.assert_allclose(np.square(sizes), figures.bubble_areas(np.array(figures.SIZE_LEGEND)))  # as plotted
    assert all(b - a >= 2.0 for a, b in zip(sizes, sizes[1:], strict=False)), sizes
    circles = [_points_extent(h, fig) for h in legend.legend_handles]  # y extent of a marker: its diameter
    for upper, lower in zip(circles, circles[1:], strict=False):
        assert upper.y0 > lower.y1, (labels, upper, lower)  # rows of the legend never overlap
    areas = fig.axes[0].collections[0].get_sizes()
    np.testing.assert_allclose(areas, figures.BUBBLE_AREA_AT_100 * np.array(dice) / 100)
    plt.close(fig)


def _near_axes(legend, ax, fig, gap_pt: float = 20.0) -> bool:
    """The legend starts within ``gap_pt`` right of the axes and ends inside the figure, with little to spare."""
    box, frame = _points_extent(legend, fig), _points_extent(ax, fig)
    width = fig.get_figwidth() * 72
    return 0 <= box.x0 - frame.x1 <= gap_pt and box.x1 <= width and width - box.x1 <= 36


def test_bubble_legends_sit_beside_the_axes_inside_the_figure():
    fig = figures.bubble_chart(_bubble_rows(5))
    fig.canvas.draw()
    ax = fig.axes[0]
    legends = [c for c in ax.get_children() if isinstance(c, Legend)]
    assert len(legends) == 2
    for legend in legends:
        box = _points_extent(legend, fig)
        assert 0 <= box.x0 - _points_extent(ax, fig).x1 <= 20 and box.x1 <= fig.get_figwidth() * 72, box
    plt.close(fig)


@pytest.mark.parametrize("n_datasets", [1, 2, 4])
def test_val_curves_legend_sits_next_to_the_panels(n_datasets):
    curve = (np.arange(1, 6), np.linspace(50, 80, 5))
    curves = {f"D{k}": {"Unet": curve, "Unet++": curve, "A much longer model name": curve} for k in range(n_datasets)}
    fig = figures.val_curves(curves, reference="Unet")
    fig.canvas.draw()
    legend = next(lg for ax in fig.axes for lg in [ax.get_legend()] if lg is not None)
    right = max((ax for ax in fig.axes if ax.axison), key=lambda ax: _points_extent(ax, fig).x1)
    assert _near_axes(legend, right, fig), (_points_extent(legend, fig), _points_extent(right, fig))
    plt.close(fig)


@pytest.mark.parametrize("palette", ["default", "colorblind"])
def test_ours_colour_is_never_another_models(palette):
    ours = to_rgb(figures.OURS[palette])
    assert all(to_rgb(c) != ours for c in figures.colours(palette, 30))
    rows = _bubble_rows(5)
    rows["family"] = ["CNN", "Transformer", "Hybrid", "SMP", "Ours"]
    fig = figures.bubble_chart(rows, palette)
    faces = [tuple(c[:3]) for c in fig.axes[0].collections[0].get_facecolors()]
    assert faces[-1] == pytest.approx(ours) and all(f != pytest.approx(ours) for f in faces[:-1]), faces
    plt.close(fig)
    curve = (np.arange(1, 4), np.array([1.0, 2, 3]))
    models = ["Unet", "Unet++", "AttentionUnet", "SwinUnet", "DyGLNet"]
    fig = figures.val_curves({"D": dict.fromkeys(models, curve)}, reference="DyGLNet", palette=palette)
    lines = {line.get_label(): to_rgb(line.get_color()) for line in fig.axes[0].lines}
    assert lines.pop("DyGLNet") == ours and ours not in lines.values(), lines
    plt.close(fig)


# --- predict --overlay: the qualitative figure's colours --------------------------------------------


def test_predict_overlay_uses_the_shared_prediction_colour_not_a_verdict_colour():
    from pipeline.predict import overlay
    from reports import overlays

    assert figures.OVERLAYS is overlays.OVERLAYS and figures.OVERLAY_LABELS is overlays.OVERLAY_LABELS
    for palette in overlays.OVERLAYS.values():
        verdicts = {palette[k] for k in ("tp", "fp", "fn", "gt")}  # what qualitative.png paints
        assert palette["pred"] not in verdicts and len(verdicts) == 4
    mask = np.zeros((9, 9), bool)
    mask[2:7, 2:7] = True
    out = overlay(np.zeros((9, 9, 3), np.uint8), mask)
    pred = overlays.OVERLAYS["default"]["pred"]
    assert tuple(out[2, 2]) == pred  # the contour
    assert tuple(out[4, 4]) == tuple(int(0.45 * c) for c in pred)  # the tinted inside
    assert tuple(out[0, 0]) == (0, 0, 0)
