"""Per-image segmentation metrics as the paper computes them, and the one list of metric names and labels.

Importing this module does not import torch (the report stage reads the names and labels below); the
functions that take tensors import it when called.

Per image: sigmoid, threshold 0.5 for the prediction, target > 0.5; confusion counts TP, FP, FN, TN;
Dice = 2TP/(2TP+FP+FN), IoU = TP/(TP+FP+FN), Precision = TP/(TP+FP), Recall = TP/(TP+FN),
Specificity = TN/(TN+FP), Accuracy = (TP+TN)/all. Averages are taken over images.

Undefined ratios (0/0) are scored 1 when the prediction equals the target on that image (for example
both masks empty: nothing to find and nothing found) and 0 otherwise. The authors' ``test.py`` adds
1e-8 to every denominator, which scores an empty-empty image 0; no test image of the paper's datasets
has an empty mask, so the two rules agree there.

Boundaries are the mask pixels removed by one binary erosion with the 4-connected cross (scipy's
default structure, pixels outside the image counted as background), so a mask touching the image edge
has a boundary there.

HD95 (pixels): the 95th percentile (numpy's linear interpolation) of the symmetric boundary-to-boundary
distances, both directed sets POOLED, from scipy's Euclidean distance transform. Both masks empty -> 0;
exactly one empty -> the image diagonal (the largest distance possible), so that a missed lesion is
penalised and means stay finite.

Normalised surface Dice at tolerance ``SURFACE_TOLERANCE_PX`` (Nikolov et al. 2021): the share of both
boundaries lying within the tolerance of the other boundary, (|S_p within tau of S_g| + |S_g within tau
of S_p|) / (|S_p| + |S_g|), distance <= tau. Both masks empty -> 1, exactly one empty -> 0.

``pred_fg`` and ``true_fg``: foreground fraction of the prediction and of the ground truth, in percent
of the image.

How other implementations differ (checked in ``tests/test_metrics.py``):

- medpy 0.5 (``medpy.metric.binary``): identical Dice, IoU (``jc``), precision, recall, specificity and
  HD95 on non-empty masks (same boundary, same pooled percentile). For two empty masks medpy returns NaN
  for Dice/IoU (with a warning) and raises for HD95; we return 1 and 0/diagonal as above.
- MONAI 1.x: identical confusion-matrix metrics and surface Dice on non-empty masks. MONAI's
  ``compute_hausdorff_distance(percentile=95)`` takes the MAXIMUM of the two directed 95th percentiles
  instead of pooling them, so it is >= ours; its surface Dice and Dice of two empty masks are NaN
  (``ignore_empty``) where ours are 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from engine.metric_names import SURFACE_TOLERANCE_PX

if TYPE_CHECKING:
    import torch


def confusion_counts(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """TP, FP, FN, TN per image of boolean ``pred`` and ``target`` shaped (N, H, W) or (N, 1, H, W)."""
    pred, target = pred.flatten(1).bool(), target.flatten(1).bool()
    tp = (pred & target).sum(1)
    fp = (pred & ~target).sum(1)
    fn = (~pred & target).sum(1)
    tn = (~pred & ~target).sum(1)
    return {"tp": tp.double(), "fp": fp.double(), "fn": fn.double(), "tn": tn.double()}


def _ratio(num: torch.Tensor, den: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    import torch

    out = num / den.clamp_min(1)
    return torch.where(den > 0, out, exact.double())


def overlap_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, np.ndarray]:
    """The six paper metrics (fractions in [0, 1]) per image of boolean masks (tensors or arrays)."""
    import torch

    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    c = confusion_counts(pred, target)
    tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]
    exact = (fp + fn) == 0
    metrics = {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, exact),
        "iou": _ratio(tp, tp + fp + fn, exact),
        "precision": _ratio(tp, tp + fp, exact),
        "recall": _ratio(tp, tp + fn, exact),
        "specificity": _ratio(tn, tn + fp, exact),
        "accuracy": (tp + tn) / (tp + fp + fn + tn),
    }
    return {k: v.cpu().numpy() for k, v in metrics.items()}


def _boundary(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _boundary_distances(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances of pred's boundary pixels to target's boundary, and of target's to pred's (both non-empty)."""
    pred_edge, target_edge = _boundary(pred), _boundary(target)
    to_target = ndimage.distance_transform_edt(~target_edge)
    to_pred = ndimage.distance_transform_edt(~pred_edge)
    return to_target[pred_edge], to_pred[target_edge]


def hd95(pred: np.ndarray, target: np.ndarray) -> float:
    """95th-percentile symmetric Hausdorff distance in pixels between two boolean 2D masks."""
    pred, target = np.asarray(pred, dtype=bool), np.asarray(target, dtype=bool)
    if not pred.any() and not target.any():
        return 0.0
    if not pred.any() or not target.any():
        return float(np.hypot(*pred.shape))
    return float(np.percentile(np.concatenate(_boundary_distances(pred, target)), 95))


def surface_dice(pred: np.ndarray, target: np.ndarray, tolerance: float = SURFACE_TOLERANCE_PX) -> float:
    """Normalised surface Dice (fraction in [0, 1]) of two boolean 2D masks at ``tolerance`` pixels."""
    pred, target = np.asarray(pred, dtype=bool), np.asarray(target, dtype=bool)
    if not pred.any() and not target.any():
        return 1.0
    if not pred.any() or not target.any():
        return 0.0
    a, b = _boundary_distances(pred, target)
    return float(((a <= tolerance).sum() + (b <= tolerance).sum()) / (len(a) + len(b)))


def binarize_logits(logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """The predicted mask: sigmoid(logits) > threshold."""
    import torch

    return torch.sigmoid(logits.float()) > threshold


def image_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, np.ndarray]:
    """Every metric of ``ALL_METRICS`` per image, from a boolean prediction (N, 1, H, W) and a target in
    [0, 1] of the same shape (tensors or arrays). Overlap ratios and surface Dice are fractions, HD95 is
    in pixels, ``pred_fg``/``true_fg`` in percent of the image (see ``REPORT_SCALE``)."""
    import torch

    pred, target = torch.as_tensor(pred).bool(), torch.as_tensor(target)
    truth = target > 0.5
    metrics = overlap_metrics(pred, truth)
    pred_np, truth_np = pred[:, 0].cpu().numpy(), truth[:, 0].cpu().numpy()
    pairs = list(zip(pred_np, truth_np, strict=True))
    metrics["hd95"] = np.array([hd95(p, t) for p, t in pairs], dtype=np.float64)
    metrics["surface_dice"] = np.array([surface_dice(p, t) for p, t in pairs], dtype=np.float64)
    metrics["pred_fg"] = pred_np.reshape(len(pred_np), -1).mean(axis=1, dtype=np.float64) * 100
    metrics["true_fg"] = truth_np.reshape(len(truth_np), -1).mean(axis=1, dtype=np.float64) * 100
    return metrics
