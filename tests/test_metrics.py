"""Per-image metrics as the paper defines them, the empty-mask rules, HD95 and the bootstrap summary."""

import warnings

import numpy as np
import pytest
import torch

from engine.metric_names import ALL_METRICS, METRIC_LABELS, METRIC_UNITS, REPORT_SCALE, SURFACE_TOLERANCE_PX, metric_key
from engine.metrics import binarize_logits, hd95, image_metrics, overlap_metrics, surface_dice
from engine.stats import summarize


def masks(*rows):
    return torch.tensor(np.array(rows, dtype=bool))


def test_confusion_based_metrics_match_hand_counts():
    pred = masks([[1, 1, 0, 0], [1, 0, 0, 0]])  # one image, 2 x 4
    truth = masks([[1, 0, 0, 0], [1, 1, 0, 0]])
    m = overlap_metrics(pred[None], truth[None])
    tp, fp, fn, tn = 2, 1, 1, 4
    assert m["dice"][0] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert m["iou"][0] == pytest.approx(tp / (tp + fp + fn))
    assert m["precision"][0] == pytest.approx(tp / (tp + fp))
    assert m["recall"][0] == pytest.approx(tp / (tp + fn))
    assert m["specificity"][0] == pytest.approx(tn / (tn + fp))
    assert m["accuracy"][0] == pytest.approx((tp + tn) / 8)


def test_metrics_are_per_image_not_pooled():
    pred = torch.zeros(2, 4, 4, dtype=torch.bool)
    truth = torch.zeros(2, 4, 4, dtype=torch.bool)
    pred[0, :2], truth[0, :2] = True, True  # perfect on image 0
    truth[1, 0, 0] = True  # image 1: one missed pixel
    m = overlap_metrics(pred, truth)
    assert m["dice"].tolist() == [1.0, 0.0]


def test_empty_rules():
    empty = torch.zeros(1, 4, 4, dtype=torch.bool)
    some = empty.clone()
    some[0, 1, 1] = True
    both_empty = overlap_metrics(empty, empty)
    assert all(both_empty[k][0] == 1.0 for k in both_empty)
    missed = overlap_metrics(empty, some)
    assert missed["dice"][0] == 0.0 and missed["precision"][0] == 0.0 and missed["recall"][0] == 0.0
    assert hd95(empty[0].numpy(), empty[0].numpy()) == 0.0
    assert hd95(empty[0].numpy(), some[0].numpy()) == pytest.approx(np.hypot(4, 4))


def test_hd95_of_shifted_square():
    a = np.zeros((32, 32), bool)
    a[8:16, 8:16] = True
    b = np.roll(a, 3, axis=1)
    assert hd95(a, a) == 0.0
    assert hd95(a, b) == pytest.approx(3.0)


def test_image_metrics_threshold_logits_at_half():
    logits = torch.tensor([[[[2.0, -2.0], [0.1, -0.1]]]])
    target = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    m = image_metrics(binarize_logits(logits), target)
    assert m["dice"][0] == 1.0 and m["hd95"][0] == 0.0


def test_summarize_is_seeded_and_brackets_the_mean():
    values = np.linspace(0, 1, 50)
    a, b = summarize(values, seed=1, scale=100), summarize(values, seed=1, scale=100)
    assert a == b
    assert a["ci95_low"] < a["mean"] < a["ci95_high"]
    assert a["mean"] == pytest.approx(50.0)


def test_image_metrics_returns_every_declared_key_and_foreground_percent():
    pred = torch.zeros(2, 1, 10, 10, dtype=torch.bool)
    target = torch.zeros(2, 1, 10, 10)
    pred[0, 0, :5] = True  # 50 % predicted
    target[0, 0, :2] = 1.0  # 20 % true
    m = image_metrics(pred, target)
    assert set(m) == set(ALL_METRICS)
    assert m["pred_fg"].tolist() == [50.0, 0.0] and m["true_fg"].tolist() == [20.0, 0.0]
    assert m["surface_dice"][1] == 1.0  # both empty


def test_surface_dice_rules():
    a = np.zeros((40, 40), bool)
    a[10:30, 10:30] = True
    assert surface_dice(a, a) == 1.0
    assert surface_dice(a, np.roll(a, 1, axis=0)) == 1.0  # 1 px shift is within the 2 px tolerance
    far = np.roll(a, 8, axis=1)
    assert 0.0 < surface_dice(a, far) < 0.5
    assert surface_dice(a, np.zeros_like(a)) == 0.0
    assert surface_dice(np.zeros_like(a), np.zeros_like(a)) == 1.0


def test_metric_names_are_one_list_with_labels_units_and_scale():
    for name in ALL_METRICS:
        assert name in METRIC_LABELS and name in METRIC_UNITS and name in REPORT_SCALE
    assert metric_key("IoU") == "iou" and metric_key("dice") == "dice"


def _random_masks(seed: int, n: int = 25, size: int = 48):
    """Blobs of random size and position (never touching the border) and some edge cases."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = []
    for _ in range(n):
        pair = []
        for _ in range(2):
            cy, cx = rng.uniform(14, size - 14, 2)
            ry, rx = rng.uniform(2, 10, 2)
            blob = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            blob &= rng.random((size, size)) > 0.05  # ragged boundaries and holes
            pair.append(blob)
        out.append(tuple(pair))
    single = np.zeros((size, size), bool)
    single[20, 20] = True
    out.append((single, single.copy()))  # one pixel each, identical
    line = np.zeros((size, size), bool)
    line[10:12, 5:40] = True
    out.append((line, np.roll(line, 3, axis=0)))  # thin structures
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_overlap_metrics_match_medpy(seed):
    medpy = pytest.importorskip("medpy.metric.binary")
    for pred, truth in _random_masks(seed):
        ours = overlap_metrics(torch.tensor(pred[None]), torch.tensor(truth[None]))
        assert ours["dice"][0] == pytest.approx(medpy.dc(pred, truth), abs=1e-12)
        assert ours["iou"][0] == pytest.approx(medpy.jc(pred, truth), abs=1e-12)
        assert ours["precision"][0] == pytest.approx(medpy.precision(pred, truth), abs=1e-12)
        assert ours["recall"][0] == pytest.approx(medpy.recall(pred, truth), abs=1e-12)
        assert ours["specificity"][0] == pytest.approx(medpy.specificity(pred, truth), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_hd95_matches_medpy(seed):
    medpy = pytest.importorskip("medpy.metric.binary")
    for pred, truth in _random_masks(seed):
        assert hd95(pred, truth) == pytest.approx(medpy.hd95(pred, truth), abs=1e-9)


def test_empty_mask_conventions_differ_from_medpy_as_documented():
    medpy = pytest.importorskip("medpy.metric.binary")
    empty = np.zeros((8, 8), bool)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.isnan(medpy.dc(empty, empty))  # medpy: NaN; ours: 1 (nothing to find, nothing found)
    assert overlap_metrics(torch.tensor(empty[None]), torch.tensor(empty[None]))["dice"][0] == 1.0
    with pytest.raises(RuntimeError):
        medpy.hd95(empty, empty)  # medpy refuses; ours: 0 (both empty), the diagonal (one empty)
    assert hd95(empty, empty) == 0.0


@pytest.mark.filterwarnings("ignore::FutureWarning")  # MONAI's own deprecation notice
@pytest.mark.parametrize("seed", [0])
def test_confusion_metrics_and_surface_dice_match_monai(seed):
    monai = pytest.importorskip("monai.metrics")
    cases = _random_masks(seed)
    pred = torch.tensor(np.stack([p for p, _ in cases]))[:, None].float()
    truth = torch.tensor(np.stack([t for _, t in cases]))[:, None].float()
    ours = image_metrics(pred.bool(), truth)
    confusion = monai.get_confusion_matrix(pred, truth, include_background=True)
    for name, monai_name in (
        ("precision", "precision"),
        ("recall", "sensitivity"),
        ("specificity", "specificity"),
        ("accuracy", "accuracy"),
    ):
        theirs = monai.compute_confusion_matrix_metric(monai_name, confusion)[:, 0].numpy()
        np.testing.assert_allclose(ours[name], theirs, atol=1e-6)
    np.testing.assert_allclose(ours["dice"], monai.compute_dice(pred, truth)[:, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(ours["iou"], monai.compute_iou(pred, truth)[:, 0].numpy(), atol=1e-6)
    nsd = monai.compute_surface_dice(pred, truth, class_thresholds=[SURFACE_TOLERANCE_PX], include_background=True)
    np.testing.assert_allclose(ours["surface_dice"], nsd[:, 0].numpy(), atol=1e-6)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_monai_hd95_takes_the_larger_directed_percentile():
    monai = pytest.importorskip("monai.metrics")
    for pred, truth in _random_masks(3):
        theirs = float(
            monai.compute_hausdorff_distance(
                torch.tensor(pred)[None, None].float(), torch.tensor(truth)[None, None].float(), percentile=95
            )[0, 0]
        )
        assert theirs >= hd95(pred, truth) - 1e-9  # pooled (ours) <= max of the directed percentiles (MONAI)
