"""Paired significance tests between DyGLNet and the other models over per-image Dice."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon


def wilcoxon_vs_reference(per_image: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Two-sided paired Wilcoxon signed-rank test of ``reference`` against every other model.

    ``per_image`` has columns ``dataset``, ``model``, ``id`` and ``dice`` (one value per image; several
    seeds are averaged per image beforehand). Returns one row per (dataset, model) with the number of
    paired images, the median Dice difference (reference - model, in points) and the p-value; p is
    1.0 when every paired difference is zero.
    """
    rows = []
    for dataset, group in per_image.groupby("dataset", sort=False):
        wide = group.pivot_table(index="id", columns="model", values="dice", aggfunc="mean")
        if reference not in wide:
            continue
        for model in wide.columns:
            if model == reference:
                continue
            pair = wide[[reference, model]].dropna()
            diff = (pair[reference] - pair[model]).to_numpy() * 100
            if len(diff) == 0:
                continue
            p = 1.0 if np.allclose(diff, 0) else float(wilcoxon(diff, zero_method="wilcox").pvalue)
            rows.append(
                {
                    "dataset": dataset,
                    "model": model,
                    "n_images": len(diff),
                    "median_diff": float(np.median(diff)),
                    "mean_diff": float(diff.mean()),
                    "p_value": p,
                }
            )
    return pd.DataFrame(rows, columns=["dataset", "model", "n_images", "median_diff", "mean_diff", "p_value"])
