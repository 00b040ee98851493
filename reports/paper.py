"""The paper's own tables, kept as data in ``reports/paper/*.csv`` (the paper's numbers, never ours).

Besides the values, the CSVs fix the layout of our tables: which datasets share one of the paper's
Tables 2-5 and which metrics that table prints (Tables 2-3: six, Tables 4-5: Dice, IoU, Precision and
Accuracy), read from ``comparison.csv`` rather than written in code.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.errors import UserError
from engine.metric_names import PAPER_METRICS, metric_key
from engine.params import TrainParams

PAPER_DIR = Path(__file__).resolve().parent / "paper"
CITATION = "Zhao et al., Pattern Recognition 2025"
RECIPE_KEYS = ("img_size", "budget", "batch_size", "lr")  # the recipe settings the reports name and compare


@dataclass(frozen=True)
class Layout:
    """One comparison table: the paper's table name (or None), its datasets and metrics, in order."""

    table: str | None
    datasets: tuple[str, ...]  # dataset keys of this run
    metrics: tuple[str, ...]  # metric keys


@functools.cache
def read(name: str, folder: Path = PAPER_DIR) -> pd.DataFrame:
    """``reports/paper/<name>.csv``; a missing or malformed file is a UserError naming it."""
    path = folder / f"{name}.csv"
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as err:
        raise UserError(f"{path}: unreadable paper table: {err}") from err


def comparison_layouts(datasets: list[str], labels: dict[str, str]) -> list[Layout]:
    """Datasets grouped as the paper's Tables 2-5 with that table's metrics; others get a table each
    with the six metrics of Tables 2-3. Tables in the paper's order, then the others in run order."""
    paper = read("comparison")
    table_of = dict(zip(paper["dataset"], paper["table"], strict=False))
    metrics_of = {
        t: tuple(dict.fromkeys(metric_key(m) for m in g["metric"])) for t, g in paper.groupby("table", sort=False)
    }
    grouped: dict[str, list[str]] = {}
    others = []
    for d in datasets:
        table = table_of.get(labels[d])
        if table is None:
            others.append(Layout(None, (d,), PAPER_METRICS))
        else:
            grouped.setdefault(table, []).append(d)
    ordered = [Layout(t, tuple(grouped[t]), metrics_of[t]) for t in sorted(grouped)]
    return ordered + others


def paper_value(table: str, **where: str) -> float | None:
    """One value of a paper table (``value_percent``, or the named column for complexity), or None."""
    frame = read(table)
    column = where.pop("column", "value_percent")
    mask = pd.Series(True, index=frame.index)
    for key, value in where.items():
        mask &= frame[key] == value
    hits = frame.loc[mask, column]
    return float(hits.iloc[0]) if len(hits) else None


def recipe_of(train) -> dict:
    """``RECIPE_KEYS`` of a ``train:`` recipe (:class:`engine.params.TrainParams`); the budget as text: ``450
    optimiser steps`` or ``130 epochs``."""
    budget = f"{train.steps} optimiser steps" if train.steps is not None else f"{train.epochs} epochs"
    return {"img_size": train.img_size, "budget": budget, "batch_size": train.batch_size, "lr": train.lr}


def recipe() -> dict:
    """The paper's recipe (section 4.1) for ``RECIPE_KEYS``: the defaults of params.yaml's ``train:`` schema."""
    return recipe_of(TrainParams())


def table7_datasets() -> list[str]:
    """The datasets whose mean Dice the paper's Table 7 prints: the seven of its Table 1."""
    return list(read("datasets")["dataset"])
