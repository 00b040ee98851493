"""Warnings attached to table rows: degenerate and unconverged runs.

- **Degenerate (D)**: the run predicts too little foreground to be compared: its mean predicted
  foreground over the test images (``pred_fg`` of ``per_image.csv``, % of the image) is below
  ``DEGENERATE_RATIO`` (0.5) times the ground truth's mean foreground (``true_fg``). Such a model can
  "win" specificity or accuracy by predicting background; its cells are never marked best or second.
- **Unconverged (U)**: the validation Dice was still rising when training stopped: the best
  ``val_dice`` of ``log.csv`` in the last quarter of the epochs (the last ceil(E/4), at least one)
  is more than ``UNCONVERGED_MARGIN`` (0.5) Dice points above the best of all earlier epochs.
  ``val_dice`` is read in percent; a log whose values are all <= 1 is read as fractions (logs written
  before the switch to percent). A run without a log, with fewer than two epochs, or without validation
  (an empty ``val_dice``, as with ``train.selection: last`` on ISIC2016/TNBC) is not flagged and the
  report says for how many runs this could not be judged.

A (dataset, model) is flagged when any of its seeds is.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

DEGENERATE_RATIO = 0.5
UNCONVERGED_MARGIN = 0.5  # Dice points


def degenerate(per_image: pd.DataFrame) -> bool | None:
    """True/False, or None when ``per_image.csv`` has no ``pred_fg``/``true_fg`` columns."""
    if not {"pred_fg", "true_fg"} <= set(per_image.columns):
        return None
    truth = float(per_image["true_fg"].mean())
    return bool(float(per_image["pred_fg"].mean()) < DEGENERATE_RATIO * truth) if truth > 0 else False


def val_dice_percent(log: pd.DataFrame) -> np.ndarray:
    values = pd.to_numeric(log["val_dice"], errors="coerce").to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    if len(finite) and np.nanmax(np.abs(finite)) <= 1.0:
        values = values * 100
    return values


def unconverged(log: pd.DataFrame | None) -> bool | None:
    """True/False, or None when it cannot be judged (no log, < 2 epochs, no validation values)."""
    if log is None or len(log) < 2:
        return None
    values = val_dice_percent(log)
    if not np.isfinite(values).any():
        return None
    last = max(1, math.ceil(len(values) / 4))
    early, late = values[:-last], values[-last:]
    if not np.isfinite(early).any() or not np.isfinite(late).any():
        return None
    return bool(np.nanmax(late) > np.nanmax(early) + UNCONVERGED_MARGIN)


def describe_rules() -> str:
    """One paragraph for the reports: what D and U mean."""
    return (
        f"Flags: (D) degenerate: mean predicted foreground below {DEGENERATE_RATIO:g} x the ground truth's "
        "mean foreground on the test images; never marked best. (U) unconverged: the best validation Dice in "
        f"the last quarter of the epochs is more than {UNCONVERGED_MARGIN:g} Dice points above the best of "
        "all earlier epochs."
    )


SHORT_RULES = (
    f"D: degenerate run (mean predicted foreground below {DEGENERATE_RATIO:g} × the ground truth's; not ranked). "
    "U: unconverged (validation Dice still rising at the end of training)."
)
