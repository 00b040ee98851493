"""Summaries of per-image values: bootstrap confidence intervals of the mean, over images and over seeds and
images (numpy only)."""

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


def two_level_bootstrap(values: np.ndarray, n_boot: int = 1000, seed: int = 0, scale: float = 1.0) -> dict[str, float]:
    """Grand mean of a seeds x images matrix with a 95% interval from resampling seeds, then images.

    Each resample draws ``n_seeds`` seeds with replacement and ``n_images`` image indices with replacement; the
    same image indices are used for every drawn seed, so the images stay paired across seeds (a seed's run and
    another's are scored on the same test images). The resample's value is the mean over the drawn seeds of
    each seed's mean over the drawn images. The image indices are drawn first, exactly as
    :func:`bootstrap_means` draws them, so with one seed the result is the ordinary image bootstrap
    (:func:`summarize`'s interval) number for number.

    Returns ``mean``, ``ci95_low``, ``ci95_high`` (percentile interval), ``seed_std`` (standard deviation of
    the seed means, ddof=1; 0 for one seed), ``n_seeds``, ``n_images``; all values times ``scale``.
    """
    values = np.asarray(values, dtype=np.float64) * scale
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"expected a non-empty seeds x images matrix, got shape {values.shape}")
    n_seeds, n_images = values.shape
    rng = np.random.default_rng(seed)
    images = rng.integers(0, n_images, size=(n_boot, n_images))
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    seed_means = values[:, images].mean(axis=2).T  # (n_boot, n_seeds): every seed on the resample's images
    grand = np.take_along_axis(seed_means, seeds, axis=1).mean(axis=1)
    low, high = np.percentile(grand, [2.5, 97.5])
    per_seed = values.mean(axis=1)
    return {
        "mean": float(values.mean()),
        "ci95_low": float(low),
        "ci95_high": float(high),
        "seed_std": float(per_seed.std(ddof=1)) if n_seeds > 1 else 0.0,
        "n_seeds": int(n_seeds),
        "n_images": int(n_images),
    }
