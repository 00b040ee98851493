"""Warnings attached to table rows: degenerate, unconverged and unequal-recipe runs.

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
  report says for how many runs this could not be judged ("not judged: no validation split").
- **Recipe differs (B)**: the run's recipe, read from its own record (``train.json``'s ``recipe`` and
  ``weights``), differs from the shared ``train:`` section of params.yaml in a key of ``RECIPE_KEYS``: the budget
  (steps, or epochs where no steps are set), learning rate, batch size, image size, augmentation or
  initialisation (pretrained or from scratch). Such a run is never marked best, never gets a "supported"
  verdict, and its paired tests read "recipe differs" instead of "X better". A table whose purpose is one
  difference (scratch against pretrained) compares on that key and flags any other.

A (dataset, model) is flagged when any of its seeds is.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

DEGENERATE_RATIO = 0.5
UNCONVERGED_MARGIN = 0.5  # Dice points
MIN_IMAGES = 20  # the small-sample rule of every verdict and paired test
SMALL_SAMPLE = f"inconclusive (n < {MIN_IMAGES})"
SMALL_SAMPLE_RULE = (
    f'Small samples: any verdict or paired test on fewer than {MIN_IMAGES} images reads "{SMALL_SAMPLE}", never '
    '"X better" or "supported": with so few images a bootstrap interval of a mean is too narrow (it covers the '
    "true mean less often than 95%) and a test has little power."
)
ONE_SEED = "one seed: seed variation not measured"  # a definite verdict on one seed says so (reports.claims)
RECIPE_KEYS = ("budget", "lr", "batch_size", "img_size", "augment", "init")  # what the (B) flag compares
_RECIPE_WORDS = {"lr": "lr", "batch_size": "batch", "img_size": "image size"}


def comparable_recipe(recipe: dict, augment: dict, pretrained: bool) -> dict:
    """The (B) flag's view of a recipe: ``RECIPE_KEYS`` from a ``train:`` mapping (or a run's recorded recipe),
    its augmentation and whether it started from pretrained weights."""
    steps = recipe.get("steps")
    budget = ("steps", int(steps)) if steps is not None else ("epochs", int(recipe["epochs"]))
    return {
        "budget": budget,
        "lr": float(recipe["lr"]),
        "batch_size": int(recipe["batch_size"]),
        "img_size": int(recipe["img_size"]),
        "augment": dict(augment),
        "init": "pretrained" if pretrained else "scratch",
    }


def _augment_difference(run: dict, shared: dict) -> str:
    keys = sorted(k for k in set(run) | set(shared) if run.get(k) != shared.get(k))
    return "augmentation " + ", ".join(f"{k} {run.get(k)!r} vs {shared.get(k)!r}" for k in keys)


def recipe_differences(run: dict, shared: dict, ignore: tuple[str, ...] = ()) -> dict[str, str]:
    """``{key: "steps 60 vs 20"}`` for every key of ``RECIPE_KEYS`` (less ``ignore``) in which a run's
    :func:`comparable_recipe` differs from the shared one."""
    out = {}
    for key in RECIPE_KEYS:
        if key in ignore or run[key] == shared[key]:
            continue
        if key == "budget":
            (kind, n), (shared_kind, shared_n) = run[key], shared[key]
            out[key] = f"{kind} {n} vs {shared_n}" if kind == shared_kind else f"{kind} {n} vs {shared_kind} {shared_n}"
        elif key == "augment":
            out[key] = _augment_difference(run[key], shared[key])
        elif key == "init":
            out[key] = f"init {run[key]} vs {shared[key]}"
        else:
            out[key] = f"{_RECIPE_WORDS[key]} {run[key]:g} vs {shared[key]:g}"
    return out


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


RECIPE_RULE = (
    "(B) recipe differs: the run's own record differs from the shared train: section in its budget, learning "
    'rate, batch size, image size, augmentation or initialisation; never marked best, never "supported", its '
    'paired tests read "recipe differs".'
)


def describe_rules() -> str:
    """One paragraph for the reports: what D, U and B mean."""
    return (
        f"Flags: (D) degenerate: mean predicted foreground below {DEGENERATE_RATIO:g} x the ground truth's "
        "mean foreground on the test images; never marked best. (U) unconverged: the best validation Dice in "
        f"the last quarter of the epochs is more than {UNCONVERGED_MARGIN:g} Dice points above the best of "
        f"all earlier epochs. {RECIPE_RULE}"
    )


SHORT_RULES = (
    f"D: degenerate run (mean predicted foreground below {DEGENERATE_RATIO:g} × the ground truth's; not ranked). "
    "U: unconverged (validation Dice still rising at the end of training). "
    "B: recipe differs from the shared one (not ranked)."
)
