"""Ranking analysis of a challenge-style results table, after challengeR (Wiesenfarth et al., Sci Rep 2021).

Input: a long table, one row per (task, algorithm, case, value). Per task: the ranks under four methods
(mean then rank, median then rank, rank then mean, test then rank), the bootstrap stability of the
mean-then-rank ranking (rank frequencies, median rank, 95% rank interval, Kendall's tau), Holm-corrected
pairwise one-sided Wilcoxon tests; over tasks: the consensus mean rank with a bootstrap interval.

- ``analysis``: the computation, :func:`analyse` -> :class:`RankingResult`, and :func:`claim_first_supported`;
- ``render``: ``ranking.json`` (:func:`to_json`), :func:`render_markdown`, :func:`render_latex`;
- ``plots``: :func:`figures` (blob plot, significance map, methods plot, rank-by-task heatmap), :func:`png_bytes`;
- ``python -m reports.ranking CSV ...`` writes them all into a folder (see ``__main__``).

Library use (the report stage)::

    result = analyse(long_df, smaller_better=False, n_boot=1000, seed=0)
    markdown, latex = render_markdown(result), render_latex(result)
    pngs = {f"{stem}.png": png_bytes(fig) for stem, fig in figures(result).items()}
"""

from reports.ranking.analysis import (
    METHODS,
    RankingInputError,
    RankingResult,
    TaskRanking,
    analyse,
    claim_first_supported,
)
from reports.ranking.plots import figures, png_bytes
from reports.ranking.render import render_latex, render_markdown, to_json

__all__ = [
    "METHODS",
    "RankingInputError",
    "RankingResult",
    "TaskRanking",
    "analyse",
    "claim_first_supported",
    "figures",
    "png_bytes",
    "render_latex",
    "render_markdown",
    "to_json",
]
