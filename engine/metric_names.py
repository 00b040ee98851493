"""The one list of metric names, their labels, units, report scale and better direction (torch-free: the report
code reads them). What each metric computes is documented in ``engine.metrics``."""

from __future__ import annotations

PAPER_METRICS = ("dice", "iou", "precision", "recall", "specificity", "accuracy")  # Tables 2-3
BOUNDARY_METRICS = ("hd95", "surface_dice")
FOREGROUND_KEYS = ("pred_fg", "true_fg")
ALL_METRICS = (*PAPER_METRICS, *BOUNDARY_METRICS, *FOREGROUND_KEYS)  # every key image_metrics returns
METRIC_LABELS = {
    "dice": "Dice",
    "iou": "IoU",
    "precision": "Precision",
    "recall": "Recall",
    "specificity": "Specificity",
    "accuracy": "Accuracy",
    "hd95": "HD95",
    "surface_dice": "NSD",
    "pred_fg": "Predicted foreground",
    "true_fg": "True foreground",
}
METRIC_SHORT_LABELS = {"precision": "Prec.", "recall": "Rec.", "specificity": "Spec.", "accuracy": "Acc."}  # LaTeX
METRIC_UNITS = {
    **{m: "%" for m in PAPER_METRICS},
    "hd95": "px",
    "surface_dice": "%",
    "pred_fg": "% of image",
    "true_fg": "% of image",
}
# engine.metrics.image_metrics value x REPORT_SCALE = the reported unit (overlap ratios are fractions per image);
# per_image.csv and metrics.json hold the reported units (METRIC_UNITS).
REPORT_SCALE = {**{m: 100.0 for m in PAPER_METRICS}, "surface_dice": 100.0, "hd95": 1.0, "pred_fg": 1.0, "true_fg": 1.0}
LOWER_IS_BETTER = frozenset({"hd95"})
SURFACE_TOLERANCE_PX = 2.0


def metric_key(label: str) -> str:
    """The metric name of a label such as ``Dice`` or ``IoU`` (as the paper's tables print them)."""
    for key, value in METRIC_LABELS.items():
        if value.lower() == label.lower():
            return key
    raise KeyError(f"unknown metric label {label!r}; known: {', '.join(METRIC_LABELS.values())}")
