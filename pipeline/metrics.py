"""Per-image segmentation metrics as the paper computes them, vectorised over a batch.

Per image: sigmoid, threshold 0.5 for the prediction, target > 0.5; confusion counts TP, FP, FN, TN;
Dice = 2TP/(2TP+FP+FN), IoU = TP/(TP+FP+FN), Precision = TP/(TP+FP), Recall = TP/(TP+FN),
Specificity = TN/(TN+FP), Accuracy = (TP+TN)/all. Averages are taken over images.

Undefined ratios (0/0) are scored 1 when the prediction equals the target on that image (for example
both masks empty: nothing to find and nothing found) and 0 otherwise. The authors' ``test.py`` adds
1e-8 to every denominator, which scores an empty-empty image 0; no test image of the paper's datasets
has an empty mask, so the two rules agree there.

HD95 (pixels): the 95th percentile of the symmetric boundary-to-boundary distances (both directed
sets pooled), from scipy's Euclidean distance transform. Both masks empty -> 0; exactly one empty ->
the image diagonal (the largest distance possible), so that a missed lesion is penalised and means
stay finite.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

PAPER_METRICS = ("dice", "iou", "precision", "recall", "specificity", "accuracy")
ALL_METRICS = (*PAPER_METRICS, "hd95")


def confusion_counts(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """TP, FP, FN, TN per image of boolean ``pred`` and ``target`` shaped (N, H, W) or (N, 1, H, W)."""
    pred, target = pred.flatten(1).bool(), target.flatten(1).bool()
    tp = (pred & target).sum(1)
    fp = (pred & ~target).sum(1)
    fn = (~pred & target).sum(1)
    tn = (~pred & ~target).sum(1)
    return {"tp": tp.double(), "fp": fp.double(), "fn": fn.double(), "tn": tn.double()}


def _ratio(num: torch.Tensor, den: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    out = num / den.clamp_min(1)
    return torch.where(den > 0, out, exact.double())


def overlap_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, np.ndarray]:
    """The six paper metrics (fractions in [0, 1]) per image of boolean masks."""
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


def hd95(pred: np.ndarray, target: np.ndarray) -> float:
    """95th-percentile symmetric Hausdorff distance in pixels between two boolean 2D masks."""
    pred, target = pred.astype(bool), target.astype(bool)
    if not pred.any() and not target.any():
        return 0.0
    if not pred.any() or not target.any():
        return float(np.hypot(*pred.shape))
    pred_edge, target_edge = _boundary(pred), _boundary(target)
    to_target = ndimage.distance_transform_edt(~target_edge)
    to_pred = ndimage.distance_transform_edt(~pred_edge)
    distances = np.concatenate([to_target[pred_edge], to_pred[target_edge]])
    return float(np.percentile(distances, 95))


def binarize_logits(logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """The predicted mask: sigmoid(logits) > threshold."""
    return torch.sigmoid(logits.float()) > threshold


def image_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, np.ndarray]:
    """All metrics per image from a boolean prediction (N, 1, H, W) and a target in [0, 1] of the same shape."""
    truth = target > 0.5
    metrics = overlap_metrics(pred, truth)
    pred_np, truth_np = pred[:, 0].cpu().numpy(), truth[:, 0].cpu().numpy()
    metrics["hd95"] = np.array([hd95(p, t) for p, t in zip(pred_np, truth_np, strict=True)])
    return metrics


def summarize(values: np.ndarray, n_boot: int = 1000, seed: int = 0, scale: float = 1.0) -> dict[str, float]:
    """Mean, std and a percentile-bootstrap 95% confidence interval of the mean, times ``scale``."""
    values = np.asarray(values, dtype=np.float64) * scale
    rng = np.random.default_rng(seed)
    if len(values) == 0:
        return {"mean": float("nan"), "std": float("nan"), "ci95_low": float("nan"), "ci95_high": float("nan"), "n": 0}
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "ci95_low": float(low),
        "ci95_high": float(high),
        "n": int(len(values)),
    }
