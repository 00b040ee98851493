"""Per-image metrics as the paper defines them, the empty-mask rules, HD95 and the bootstrap summary."""

import numpy as np
import pytest
import torch

from pipeline.metrics import binarize_logits, hd95, image_metrics, overlap_metrics, summarize


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
