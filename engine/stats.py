"""Summaries of per-image values: bootstrap confidence intervals of the mean (numpy only)."""

from __future__ import annotations

import numpy as np


def bootstrap_means(values: np.ndarray, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """``n_boot`` means of resamples (with replacement) of ``values``, seeded."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    return values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)


def summarize(values: np.ndarray, n_boot: int = 1000, seed: int = 0, scale: float = 1.0) -> dict[str, float]:
    """Mean, std and a percentile-bootstrap 95% confidence interval of the mean, times ``scale``."""
    values = np.asarray(values, dtype=np.float64) * scale
    if len(values) == 0:
        return {"mean": float("nan"), "std": float("nan"), "ci95_low": float("nan"), "ci95_high": float("nan"), "n": 0}
    low, high = np.percentile(bootstrap_means(values, n_boot, seed), [2.5, 97.5])
    return {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "ci95_low": float(low),
        "ci95_high": float(high),
        "n": int(len(values)),
    }
