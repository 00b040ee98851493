"""The ranking figures of the report, one panel per dataset: ``ranking_blob`` (bootstrap rank stability),
``ranking_significance`` (pairwise tests), ``ranking_methods`` (ranks under the four methods) and, with two or
more datasets, ``ranking_heatmap`` (rank by dataset). Drawn by :mod:`reports.ranking.plots` on the panels;
as the other figures (:mod:`reports.figures`), no title but each panel's dataset, the caption under the panels,
the reference model in Ours' colour, legends beside the top-right panel.
"""

from __future__ import annotations

import math

from matplotlib.ticker import MaxNLocator

from reports.figures import OURS, add_caption, colours, plt
from reports.ranking.plots import blob_keys, draw_blob, draw_heatmap, draw_methods, draw_significance, significance_keys
from reports.ranking_report import Ranking

PANEL_FONT = 7


def model_colours(ranking: Ranking, reference: str, palette: str) -> list:
    """One colour per algorithm of the result: the reference in Ours' colour, the others from the palette."""
    others = iter(colours(palette, len(ranking.labels)))
    by_label = {label: OURS[palette] if m == reference else next(others) for m, label in ranking.labels.items()}
    return [by_label[a] for a in ranking.result.algorithms]


def _panels(ranking: Ranking, width: float, height: float):
    """A figure with one panel per dataset (two columns from two datasets on); unused panels hidden."""
    n = len(ranking.result.tasks)
    n_cols = min(n, 2)
    n_rows = math.ceil(n / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width * n_cols, height * n_rows), dpi=150, squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes


def _finish(fig, axes, handles: list, caption: str, labelspacing: float = 0.5):
    """The legend beside the top-right panel (the figure widened by its width), the caption, the layout."""
    legend = axes[0, -1].legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0,
        fontsize=6,
        frameon=False,
        labelspacing=labelspacing,
    )
    fig.canvas.draw()
    width, height = fig.get_size_inches()
    fig.set_size_inches(width + legend.get_window_extent().width / fig.dpi + 0.15, height)
    bottom = add_caption(fig, caption)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


def _size(ranking: Ranking) -> tuple[float, float]:
    n = len(ranking.result.algorithms)
    return max(3.4, 0.3 * n + 1.6), max(2.8, 0.24 * n + 2.0)


def _title(ax, t) -> None:
    ax.set_title(f"{t.task} ({t.n_cases} images)", fontsize=8)


def blob_figure(ranking: Ranking, model_colour: list, caption: str):
    fig, axes = _panels(ranking, *_size(ranking))
    for ax, t in zip(axes.flat, ranking.result.tasks.values(), strict=False):
        draw_blob(ax, t, model_colour, fontsize=PANEL_FONT)
        ax.set_xlabel("")
        _title(ax, t)
    return _finish(fig, axes, blob_keys(), caption, labelspacing=2.0)


def significance_figure(ranking: Ranking, caption: str):
    fig, axes = _panels(ranking, *_size(ranking))
    for ax, t in zip(axes.flat, ranking.result.tasks.values(), strict=False):
        draw_significance(ax, t, ranking.result.settings.alpha, fontsize=PANEL_FONT)
        _title(ax, t)
    return _finish(fig, axes, significance_keys(ranking.result.settings.alpha), caption)


def methods_figure(ranking: Ranking, model_colour: list, caption: str):
    fig, axes = _panels(ranking, *_size(ranking))
    for ax, t in zip(axes.flat, ranking.result.tasks.values(), strict=False):
        draw_methods(ax, t, model_colour, fontsize=PANEL_FONT)
        ax.tick_params(axis="x", labelrotation=20)
        _title(ax, t)
    handles, _ = axes.flat[0].get_legend_handles_labels()
    return _finish(fig, axes, handles, caption)


def heatmap_figure(ranking: Ranking, caption: str):
    result = ranking.result
    n_alg, n_task = len(result.algorithms), len(result.tasks)
    fig, ax = plt.subplots(figsize=(max(4.5, 0.6 * n_task + 3.2), max(3.0, 0.3 * n_alg + 1.8)), dpi=150)
    image = draw_heatmap(ax, result, fontsize=PANEL_FONT)
    bar = fig.colorbar(image, ax=ax, label="rank (mean then rank)", shrink=0.8, use_gridspec=True)
    bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    bar.ax.invert_yaxis()
    bottom = add_caption(fig, caption)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


def ranking_figures(ranking: Ranking, reference: str, palette: str, captions: dict[str, str]) -> dict:
    """The figures by stem (module docstring), each with ``captions[stem]`` under it."""
    model_colour = model_colours(ranking, reference, palette)
    figs = {
        "ranking_blob": blob_figure(ranking, model_colour, captions["ranking_blob"]),
        "ranking_significance": significance_figure(ranking, captions["ranking_significance"]),
        "ranking_methods": methods_figure(ranking, model_colour, captions["ranking_methods"]),
    }
    if len(ranking.result.tasks) > 1:
        figs["ranking_heatmap"] = heatmap_figure(ranking, captions["ranking_heatmap"])
    return figs
