"""The paper's tables built from evaluation results: comparison (Tables 2-5), ablation (Table 6) and
complexity (Table 7), each rendered to Markdown and to booktabs LaTeX.

Best value per column: red in LaTeX (``\\textcolor{red}``), bold in Markdown; second best: blue,
italic. Several seeds give ``mean ± std``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FAMILY_ORDER = ["CNN", "Transformer", "Hybrid", "SMP", "Other", "Ablation", "Ours"]
COMPARISON_METRICS = ["dice", "iou", "precision", "recall", "specificity", "accuracy"]
METRIC_LABELS = {
    "dice": "Dice",
    "iou": "IoU",
    "precision": "Precision",
    "recall": "Recall",
    "specificity": "Specificity",
    "accuracy": "Accuracy",
    "hd95": "HD95",
}
LATEX_PREAMBLE_PACKAGES = ("booktabs", "multirow", "xcolor")


def aggregate_seeds(runs: pd.DataFrame) -> pd.DataFrame:
    """Long run table (dataset, model, seed, metric, value) -> mean, std and n over seeds."""
    grouped = runs.groupby(["dataset", "model", "metric"], sort=False)["value"]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def rank_columns(means: pd.DataFrame, higher_is_better: bool = True) -> pd.DataFrame:
    """1 for the best and 2 for the second-best value of each column (ties share a rank), else 0."""
    ranks = means.rank(axis=0, method="dense", ascending=not higher_is_better)
    return ranks.where(ranks <= 2, 0).fillna(0).astype(int)


def format_cells(means: pd.DataFrame, stds: pd.DataFrame, n_seeds: pd.DataFrame, latex: bool) -> pd.DataFrame:
    """Cell strings: two decimals, ``± std`` where a cell has several seeds, ``-`` where missing."""
    pm = " $\\pm$ " if latex else " ± "

    def cell(m, s, n):
        if pd.isna(m):
            return "-"
        return f"{m:.2f}{pm}{s:.2f}" if n > 1 else f"{m:.2f}"

    return pd.DataFrame(
        np.vectorize(cell, otypes=[object])(means.to_numpy(), stds.to_numpy(), n_seeds.to_numpy()),
        index=means.index,
        columns=means.columns,
    )


def to_markdown(cells: pd.DataFrame, ranks: pd.DataFrame) -> str:
    """A Markdown table; best per column in bold, second best in italics."""
    marked = cells.copy()
    marked[ranks == 1] = "**" + cells[ranks == 1] + "**"
    marked[ranks == 2] = "*" + cells[ranks == 2] + "*"
    flat = marked.copy()
    flat.columns = [" ".join(c) if isinstance(c, tuple) else c for c in flat.columns]
    flat = flat.reset_index()
    return flat.to_markdown(index=False, disable_numparse=True)


def to_latex(cells: pd.DataFrame, ranks: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs LaTeX table (needs packages booktabs, multirow, xcolor); best red, second blue."""
    colours = ranks.replace({1: "textcolor:{red}--rwrap;", 2: "textcolor:{blue}--rwrap;", 0: ""})
    styler = cells.style.apply(lambda _: colours, axis=None).format_index(escape="latex", axis=0)
    styler = styler.format_index(escape="latex", axis=1)
    n_index = cells.index.nlevels
    return styler.to_latex(
        hrules=True,
        caption=caption,
        label=label,
        position="htbp",
        position_float="centering",
        column_format="l" * n_index + "r" * cells.shape[1],
        multicol_align="c",
        multirow_align="t",
        clines="skip-last;data" if n_index > 1 else None,
    )


def family_rank(family: str) -> int:
    """Position of a model family in the paper's row order (unknown families go with "Other")."""
    return FAMILY_ORDER.index(family) if family in FAMILY_ORDER else FAMILY_ORDER.index("Other")


def wide_table(
    agg: pd.DataFrame,
    datasets: list[str],
    models: list[str],
    metrics: list[str],
    model_rows: dict[str, tuple[str, str]],
    dataset_names: dict[str, str],
):
    """(means, stds, n) frames: rows (family, model display name), columns (dataset, metric label)."""
    sub = agg[agg["dataset"].isin(datasets) & agg["model"].isin(models) & agg["metric"].isin(metrics)]
    order = sorted(models, key=lambda m: (family_rank(model_rows[m][0]), models.index(m)))
    row_index = pd.MultiIndex.from_tuples([model_rows[m] for m in order], names=["Family", "Model"])
    col_index = pd.MultiIndex.from_tuples(
        [(dataset_names[d], METRIC_LABELS[m]) for d in datasets for m in metrics], names=["Dataset", "Metric"]
    )
    frames = []
    for field in ("mean", "std", "n"):
        pivot = sub.pivot_table(index="model", columns=["dataset", "metric"], values=field, aggfunc="first")
        pivot = pivot.reindex(index=order, columns=pd.MultiIndex.from_product([datasets, metrics]))
        pivot.index, pivot.columns = row_index, col_index
        frames.append(pivot)
    return frames
