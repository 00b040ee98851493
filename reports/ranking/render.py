"""Renderings of a :class:`~reports.ranking.analysis.RankingResult`: the JSON summary, Markdown and LaTeX."""

from __future__ import annotations

import math
from typing import Any

from reports.latex import escape, text_float
from reports.ranking.analysis import METHOD_LABELS, METHODS, RankingResult, TaskRanking
from reports.table import fmt, markdown_table

RANK_HEADERS = [
    "Algorithm",
    "mean",
    "mean→rank",
    "median→rank",
    "rank→mean",
    "test→rank",
    "bootstrap median",
    "95% rank interval",
]
RANK_ALIGN = "lrrrrrrr"


def _float(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _p(p: float) -> str:
    return "–" if math.isnan(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def _value(x: float) -> str:
    return f"{x:#.4g}"


def task_json(t: TaskRanking) -> dict[str, Any]:
    """One task's entry of ``ranking.json``."""
    algs, boot = t.algorithms, t.bootstrap
    frequency = {
        a: {str(r + 1): float(f) for r, f in enumerate(boot.frequency[i]) if f > 0} for i, a in enumerate(algs)
    }
    significance = {a: {b: float(t.p_holm[i, j]) for j, b in enumerate(algs) if i != j} for i, a in enumerate(algs)}
    return {
        "n_cases": t.n_cases,
        "ranks": {m: {a: int(r) for a, r in zip(algs, t.ranks[m], strict=True)} for m in METHODS},
        "bootstrap": {
            "n": boot.n,
            "rank_frequency": frequency,
            "median_rank": {a: float(m) for a, m in zip(algs, boot.median, strict=True)},
            "interval_95": {a: [int(lo), int(hi)] for a, (lo, hi) in zip(algs, boot.interval, strict=True)},
            "kendall_tau_median": _float(boot.tau_median),
            "seed": boot.seed,
        },
        "significance": significance,
        "p_unadjusted": {
            a: {b: float(t.p_values[i, j]) for j, b in enumerate(algs) if i != j} for i, a in enumerate(algs)
        },
        "n_replaced": t.data.n_replaced,
    }


def to_json(result: RankingResult) -> dict[str, Any]:
    """The ``ranking.json`` document: ``tasks`` (per task: n_cases, ranks, bootstrap, significance) and
    ``consensus`` (mean rank over tasks), then the consensus interval and rank and the settings."""
    s = result.settings
    return {
        "tasks": {name: task_json(t) for name, t in result.tasks.items()},
        "consensus": {a: float(m) for a, m in zip(result.algorithms, result.consensus, strict=True)},
        "consensus_interval_95": {
            a: [float(lo), float(hi)] for a, (lo, hi) in zip(result.algorithms, result.consensus_interval, strict=True)
        },
        "consensus_rank": {a: int(r) for a, r in zip(result.algorithms, result.consensus_rank, strict=True)},
        "settings": {
            "smaller_better": s.smaller_better,
            "n_boot": s.n_boot,
            "seed": s.seed,
            "na_value": s.na_value,
            "alpha": s.alpha,
            "ties": "min",
        },
    }


# --------------------------------------------------------------------------------------------------
# Shared text
# --------------------------------------------------------------------------------------------------


def rank_rows(t: TaskRanking) -> list[list[str]]:
    """Rows of the rank table (``RANK_HEADERS``), best first."""
    rows = []
    for i in t.order():
        lo, hi = t.bootstrap.interval[i]
        rows.append(
            [
                t.algorithms[i],
                _value(float(t.data.values[:, i].mean())),
                *(str(int(t.ranks[m][i])) for m in METHODS),
                fmt(float(t.bootstrap.median[i]), 1),
                f"[{lo}, {hi}]",
            ]
        )
    return rows


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]} (tied)"


def winner_sentence(t: TaskRanking) -> str:
    """Whether the first place changes across the four methods, naming the winners."""
    winners = {m: t.winners(m) for m in METHODS}
    if all(w == winners[METHODS[0]] for w in winners.values()):
        return f"The winner is the same under all four methods: {_names(winners[METHODS[0]])}."
    parts = "; ".join(f"{METHOD_LABELS[m]}: {_names(w)}" for m, w in winners.items())
    return f"The winner changes across the four methods ({parts})."


def tau_sentence(t: TaskRanking) -> str:
    tau = t.bootstrap.tau_median
    return (
        f"Kendall's tau-b between each bootstrap ranking and the observed mean-then-rank ranking: median "
        f"{fmt(tau, 3)} over {t.bootstrap.n} resamples (1: the observed order, -1: its reverse)."
    )


def methods_note(result: RankingResult) -> str:
    """The Markdown 'Methods' paragraph: ties, missing values, the test, the correction, the bootstrap."""
    s = result.settings
    direction = "smaller values are better" if s.smaller_better else "larger values are better"
    replaced = sum(t.data.n_replaced for t in result.tasks.values())
    if s.na_value is None:
        missing = "none (a missing value is an error unless a replacement value is given)"
    else:
        missing = f"{replaced} NaN, infinite or absent value(s) replaced by {s.na_value:g} (as challengeR's `na.treat`)"
    return (
        f"Per task, {direction}. Ranking methods: *mean then rank* and *median then rank* rank the per-algorithm "
        "mean and median; *rank then mean* ranks the algorithms on each case, averages the ranks, and ranks the "
        "averages; *test then rank* ranks by the number of other algorithms an algorithm beats in a one-sided paired "
        f"Wilcoxon signed-rank test at p ≤ {s.alpha:g}, unadjusted (as challengeR's testThenRank). Ties share the "
        f"best rank ('min': 1, 1, 3). Missing values: {missing}. The test is computed as challengeR calls R's "
        "wilcox.test (paired, exact = FALSE): zero differences dropped, normal approximation with tie and continuity "
        "corrections; a pair with no non-zero difference has p = 1. The significance table gives, for row A and "
        "column B, the Holm-adjusted p that A is better than B, Holm over all ordered pairs of the task (bold: "
        f"≤ {s.alpha:g}). Bootstrap: cases resampled with "
        f"replacement {s.n_boot} times per task (numpy default_rng seeded with [{s.seed}, crc32(task name)]), ranked "
        "by mean then rank; the 95% rank interval holds the 2.5% and 97.5% empirical quantiles of the bootstrap "
        "ranks; Kendall's tau is tau-b. Consensus: each algorithm's mean mean-then-rank rank over the tasks, with a "
        "95% percentile interval over the bootstrap replicates."
    )


def significance_rows(t: TaskRanking, alpha: float) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the significance matrix (Holm p that the row beats the column; bold: <= alpha)."""
    order = t.order()
    headers = ["A better than B →", *(t.algorithms[j] for j in order)]
    rows = []
    for i in order:
        cells = []
        for j in order:
            p = t.p_holm[i, j]
            cells.append("–" if i == j else (f"**{_p(p)}**" if p <= alpha else _p(p)))
        rows.append([t.algorithms[i], *cells])
    return headers, rows


def consensus_rows(result: RankingResult) -> tuple[list[str], list[list[str]]]:
    headers = ["Algorithm", "consensus rank", "mean rank", "95% interval", *result.tasks]
    rows = []
    for i in sorted(range(len(result.algorithms)), key=lambda k: (result.consensus[k], k)):
        lo, hi = result.consensus_interval[i]
        per_task = [str(int(t.ranks["mean_then_rank"][i])) for t in result.tasks.values()]
        rows.append(
            [
                result.algorithms[i],
                str(int(result.consensus_rank[i])),
                fmt(result.consensus[i]),
                f"[{fmt(lo)}, {fmt(hi)}]",
                *per_task,
            ]
        )
    return headers, rows


# --------------------------------------------------------------------------------------------------
# Markdown and LaTeX
# --------------------------------------------------------------------------------------------------


def significance_markdown(t: TaskRanking, alpha: float) -> list[str]:
    """The significance table of one task with the sentence that introduces it."""
    headers, rows = significance_rows(t, alpha)
    n_pairs = len(t.algorithms) * (len(t.algorithms) - 1)
    n_sig = int((t.p_holm <= alpha).sum())
    return [
        f"Significance (Holm-adjusted one-sided p that the row is better than the column; bold: ≤ {alpha:g}; "
        f"{n_sig} of {n_pairs} ordered pairs significant):",
        "",
        markdown_table(headers, rows, "l" + "r" * (len(headers) - 1)),
        "",
    ]


def task_markdown(t: TaskRanking, alpha: float) -> list[str]:
    return [
        f"## {t.task}",
        "",
        f"{t.n_cases} cases" + (f", {t.data.n_replaced} missing value(s) replaced" if t.data.n_replaced else "") + ".",
        "",
        markdown_table(RANK_HEADERS, rank_rows(t), RANK_ALIGN),
        "",
        tau_sentence(t),
        "",
        winner_sentence(t),
        "",
        *significance_markdown(t, alpha),
    ]


def render_markdown(result: RankingResult, title: str = "Ranking analysis") -> str:
    """``ranking.md``: per task the rank table, Kendall's tau, the winner sentence and the significance table;
    then the consensus table and the Methods note."""
    lines = [f"# {title}", ""]
    for t in result.tasks.values():
        lines += task_markdown(t, result.settings.alpha)
    headers, rows = consensus_rows(result)
    lines += [
        "## Consensus over tasks",
        "",
        f"Mean of the mean-then-rank ranks over {len(result.tasks)} task(s); interval: 95% bootstrap percentile "
        "interval (cases resampled within each task).",
        "",
        markdown_table(headers, rows, "l" + "r" * (len(headers) - 1)),
        "",
        "## Methods",
        "",
        methods_note(result),
        "",
    ]
    return "\n".join(lines)


def render_latex(result: RankingResult, label_prefix: str = "tab:ranking") -> str:
    """The rank table of every task (and the consensus table with 2+ tasks) as LaTeX ``table`` floats
    (booktabs, adjustbox; see :mod:`reports.latex`). The caller adds the file header."""
    floats = []
    for k, t in enumerate(result.tasks.values(), start=1):
        caption = escape(
            f"Ranks of the algorithms on {t.task} ({t.n_cases} cases) under four ranking methods, with the median "
            f"and 95% interval of the mean-then-rank rank over {t.bootstrap.n} bootstrap resamples of the cases "
            f"(seed {result.settings.seed}). Ties share the best rank."
        )
        floats.append(text_float(RANK_HEADERS, rank_rows(t), RANK_ALIGN, caption, f"{label_prefix}-{k}"))
    if len(result.tasks) > 1:
        headers, rows = consensus_rows(result)
        caption = escape(
            f"Consensus over {len(result.tasks)} tasks: mean mean-then-rank rank with a 95% bootstrap interval, "
            "and the rank on each task."
        )
        floats.append(text_float(headers, rows, "l" + "r" * (len(headers) - 1), caption, f"{label_prefix}-consensus"))
    return "\n\n".join(floats) + "\n"
