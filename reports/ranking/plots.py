"""Figures of a ranking analysis (matplotlib, Agg canvas, no pyplot state): the blob plot of bootstrap ranks,
the significance map, the ranks under the four methods, and the rank-by-task heatmap.

Each figure's title says what it shows (cases, resamples, seed). :func:`png_bytes` writes no software version
or timestamp, so the same result gives byte-identical files.
"""

from __future__ import annotations

import io
import re

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from reports.ranking.analysis import METHOD_LABELS, METHODS, RankingResult, TaskRanking

MAX_BLOB_AREA = 400.0  # marker area (pt^2) of a rank held in every resample
TITLE_SIZE = 9
SIGNIFICANT, NOT_SIGNIFICANT = "#E69F00", "#DCE6F0"


def _figure(width: float, height: float) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def algorithm_colours(n: int) -> list:
    """One colour per algorithm (its index in the result), the same in every figure."""
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _rank_axis(ax, n: int) -> None:
    ax.set_ylim(n + 0.5, 0.5)
    ax.set_yticks(range(1, n + 1))
    ax.set_ylabel("rank (1 = best)")
    ax.grid(axis="y", color="0.9", lw=0.6)
    ax.set_axisbelow(True)


def blob_keys() -> list[Line2D]:
    """The blob plot's legend: dot areas of 10, 50 and 100% of the resamples, the median and the interval."""
    keys = [
        Line2D([], [], ls="", marker="o", color="0.5", markersize=np.sqrt(MAX_BLOB_AREA * f), label=f"{f:.0%}")
        for f in (0.1, 0.5, 1.0)
    ]
    return keys + [
        Line2D([], [], ls="", marker="x", color="black", label="median rank"),
        Line2D([], [], color="0.25", label="95% rank interval"),
    ]


def draw_blob(ax, t: TaskRanking, colours: list | None = None, fontsize: float = 8) -> None:
    """The blob plot of one task on ``ax`` (see :func:`blob_plot`); ``colours``: one per algorithm of the task."""
    order, boot = t.order(), t.bootstrap
    n = len(order)
    colours = colours or algorithm_colours(n)
    for x, i in enumerate(order):
        lo, hi = boot.interval[i]
        ax.vlines(x, lo, hi, color="0.25", lw=1.2, zorder=1)
        ranks = np.flatnonzero(boot.frequency[i]) + 1
        ax.scatter(
            np.full(len(ranks), x),
            ranks,
            s=MAX_BLOB_AREA * boot.frequency[i][ranks - 1],
            color=colours[i],
            alpha=0.75,
            lw=0,
            zorder=2,
        )
        ax.scatter([x], [boot.median[i]], marker="x", color="black", s=36, lw=1.2, zorder=3)
    ax.set_xticks(range(n), [t.algorithms[i] for i in order], rotation=45, ha="right", fontsize=fontsize)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel("algorithm, by observed rank")
    _rank_axis(ax, n)


def blob_plot(t: TaskRanking, seed: int) -> Figure:
    """challengeR's blob plot: per algorithm (x, by observed rank) the share of resamples at each rank as dot
    area, a cross at the median rank and a vertical line over the 95% rank interval."""
    n = len(t.algorithms)
    fig, ax = _figure(max(5.0, 0.45 * n + 2.2), max(3.2, 0.28 * n + 2.0))
    draw_blob(ax, t)
    ax.legend(
        handles=blob_keys(), loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False, labelspacing=1.2
    )
    ax.set_title(
        f"{t.task}: mean-then-rank ranks over {t.bootstrap.n} bootstrap resamples of {t.n_cases} cases "
        f"(seed {seed}); dot area = share of resamples",
        fontsize=TITLE_SIZE,
        wrap=True,
    )
    return fig


def significance_keys(alpha: float) -> list[Patch]:
    return [
        Patch(color=SIGNIFICANT, label=f"A better than B\n(Holm p ≤ {alpha:g})"),
        Patch(color=NOT_SIGNIFICANT, label="not significant"),
    ]


def draw_significance(ax, t: TaskRanking, alpha: float, fontsize: float = 8) -> None:
    """The significance map of one task on ``ax`` (see :func:`significance_plot`)."""
    order = t.order()
    n = len(order)
    p = t.p_holm[np.ix_(order, order)]
    significant = np.where(np.eye(n, dtype=bool), np.nan, (p <= alpha).astype(float))
    cmap = ListedColormap([NOT_SIGNIFICANT, SIGNIFICANT]).with_extremes(bad="white")
    ax.imshow(significant, cmap=cmap, vmin=0, vmax=1, aspect="equal")
    if n <= 15:
        for r in range(n):
            for c in range(n):
                if r != c:
                    text = "<.001" if p[r, c] < 0.001 else f"{p[r, c]:.2f}".lstrip("0") if p[r, c] < 1 else "1"
                    ax.text(c, r, text, ha="center", va="center", fontsize=6)
    names = [t.algorithms[i] for i in order]
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=fontsize)
    ax.set_yticks(range(n), names, fontsize=fontsize)
    ax.set_xlabel("B")
    ax.set_ylabel("A")


def significance_plot(t: TaskRanking, alpha: float) -> Figure:
    """The significance map: cell (A, B) coloured when A is significantly better than B (one-sided paired
    Wilcoxon, Holm-adjusted p <= ``alpha``); algorithms ordered by rank; Holm p printed up to 15 algorithms."""
    n = len(t.algorithms)
    fig, ax = _figure(max(3.5, 0.4 * n + 2.6), max(3.0, 0.4 * n + 1.6))
    draw_significance(ax, t, alpha)
    ax.legend(handles=significance_keys(alpha), loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False)
    ax.set_title(
        f"{t.task}: one-sided paired Wilcoxon tests, {t.n_cases} cases, Holm over {n * (n - 1)} ordered "
        "pairs; algorithms by rank",
        fontsize=TITLE_SIZE,
        wrap=True,
    )
    return fig


def draw_methods(ax, t: TaskRanking, colours: list | None = None, fontsize: float = 8) -> None:
    """The ranks of one task under the four methods on ``ax`` (see :func:`methods_plot`); lines labelled."""
    n = len(t.algorithms)
    colours = colours or algorithm_colours(n)
    x = np.arange(len(METHODS))
    for i in t.order():
        ax.plot(x, [t.ranks[m][i] for m in METHODS], marker="o", ms=4, lw=1.2, color=colours[i], label=t.algorithms[i])
    ax.set_xticks(x, [METHOD_LABELS[m] for m in METHODS], fontsize=fontsize)
    ax.set_xlim(-0.3, len(METHODS) - 0.7)
    _rank_axis(ax, n)


def methods_plot(t: TaskRanking) -> Figure:
    """Ranks of every algorithm (one line each) under the four ranking methods."""
    n = len(t.algorithms)
    fig, ax = _figure(5.5, max(3.0, 0.28 * n + 1.8))
    draw_methods(ax, t)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False)
    ax.set_title(
        f"{t.task}: rank under each ranking method ({t.n_cases} cases; ties share the best rank)",
        fontsize=TITLE_SIZE,
        wrap=True,
    )
    return fig


def draw_heatmap(ax, result: RankingResult, fontsize: float = 8):
    """The rank-by-task heatmap on ``ax`` (see :func:`rank_heatmap`); returns the image, for a colour bar."""
    order = sorted(range(len(result.algorithms)), key=lambda k: (result.consensus[k], k))
    tasks = list(result.tasks.values())
    ranks = np.array([[t.ranks["mean_then_rank"][i] for t in tasks] for i in order])
    n_alg, n_task = ranks.shape
    image = ax.imshow(ranks, cmap=colormaps["viridis_r"], vmin=1, vmax=n_alg, aspect="auto")
    for r in range(n_alg):
        for c in range(n_task):
            ax.text(
                c,
                r,
                str(ranks[r, c]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if ranks[r, c] > (n_alg + 1) / 2 else "black",
            )
    ax.set_xticks(range(n_task), [t.task for t in tasks], rotation=45, ha="right", fontsize=fontsize)
    ax.set_yticks(range(n_alg), [result.algorithms[i] for i in order], fontsize=fontsize)
    return image


def rank_heatmap(result: RankingResult) -> Figure:
    """challengeR's rankingHeatmap: the mean-then-rank rank of every algorithm (rows, by consensus) on every task."""
    n_alg, n_task = len(result.algorithms), len(result.tasks)
    fig, ax = _figure(max(4.0, 0.6 * n_task + 3.0), max(3.0, 0.3 * n_alg + 1.6))
    image = draw_heatmap(ax, result)
    bar = fig.colorbar(image, ax=ax, label="rank", shrink=0.8)
    bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    bar.ax.invert_yaxis()
    ax.set_title(
        f"Mean-then-rank rank by task ({n_tasks_text(list(result.tasks.values()))}); rows by consensus mean rank",
        fontsize=TITLE_SIZE,
        wrap=True,
    )
    return fig


def n_tasks_text(tasks: list[TaskRanking]) -> str:
    cases = sorted({t.n_cases for t in tasks})
    span = str(cases[0]) if len(cases) == 1 else f"{cases[0]}–{cases[-1]}"
    return f"{len(tasks)} tasks, {span} cases each"


def slug(name: str) -> str:
    """A file-name-safe form of a task name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "task"


def figures(result: RankingResult) -> dict[str, Figure]:
    """Every figure by file stem: ``blob_<task>``, ``significance_<task>``, ``methods_<task>`` per task and, with
    2+ tasks, ``rank_heatmap``. Task names are made file-safe (a number is added where two collide)."""
    out: dict[str, Figure] = {}
    used: set[str] = set()
    for t in result.tasks.values():
        stem, k = slug(t.task), 2
        while stem in used:
            stem, k = f"{slug(t.task)}-{k}", k + 1
        used.add(stem)
        out[f"blob_{stem}"] = blob_plot(t, result.settings.seed)
        out[f"significance_{stem}"] = significance_plot(t, result.settings.alpha)
        out[f"methods_{stem}"] = methods_plot(t)
    if len(result.tasks) > 1:
        out["rank_heatmap"] = rank_heatmap(result)
    return out


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG, without the software metadata (byte-identical for identical figures)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
