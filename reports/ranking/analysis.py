"""The model of a ranking analysis: per-task matrices, the four ranking methods, bootstrap rank stability,
pairwise significance and the consensus over tasks. Nothing here renders; see ``render`` and ``plots``.

Conventions (the Methods note of ``render`` states them for readers):

- Scores: per task a cases x algorithms matrix; with ``smaller_better`` the values are negated, so that inside
  this module a higher score is always better.
- Ties: exact equality of the statistic ranked; tied algorithms share the best of their ranks ('min': 1, 1, 3).
- Missing values: a NaN, an infinite value or a (case, algorithm) pair absent from a task is an error, unless
  ``na_value`` is given, which replaces each of them before anything is computed (challengeR's ``na.treat``
  does the same; set it to the worst possible value to penalise a failed case).
- Test: one-sided paired Wilcoxon signed-rank test per ordered pair, computed as challengeR computes it (see
  :func:`one_sided_wilcoxon`); zero differences are dropped; with no non-zero difference p = 1. A win, and a
  significant cell of the significance map, is p <= alpha (challengeR's rule).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata, wilcoxon

from core.errors import UserError
from reports.significance import holm

METHODS = ("mean_then_rank", "median_then_rank", "rank_then_mean", "test_then_rank")
METHOD_LABELS = {
    "mean_then_rank": "mean then rank",
    "median_then_rank": "median then rank",
    "rank_then_mean": "rank then mean",
    "test_then_rank": "test then rank",
}
COLUMNS = ("task", "algorithm", "case", "value")
ALPHA = 0.05
_CHUNK_ELEMENTS = 4_000_000  # bootstrap gathers at most this many values at once (32 MB of float64)


class RankingInputError(UserError):
    """The long table cannot be ranked (missing column or value, duplicate row, non-number)."""


@dataclass(frozen=True)
class TaskData:
    """One task's cases x algorithms matrix; ``scores`` is higher-is-better (``values`` negated if needed)."""

    task: str
    algorithms: list[str]
    cases: list[str]
    values: np.ndarray
    scores: np.ndarray
    n_replaced: int = 0


@dataclass(frozen=True)
class BootstrapRanks:
    """Mean-then-rank rankings of ``n`` case resamples and their summaries (rows/columns: algorithms)."""

    n: int
    seed: int
    ranks: np.ndarray  # (n, n_algorithms), 'min' ties
    frequency: np.ndarray  # (n_algorithms, n_algorithms): [a, r - 1] = share of resamples with rank r
    median: np.ndarray  # (n_algorithms,)
    interval: np.ndarray  # (n_algorithms, 2) integer ranks: empirical 2.5% and 97.5% quantiles
    tau: np.ndarray  # (n,) Kendall's tau-b of each resample's ranking against the observed one

    @property
    def tau_median(self) -> float:
        """Median tau over the resamples where it is defined (NaN when it never is)."""
        finite = self.tau[~np.isnan(self.tau)]
        return float(np.median(finite)) if finite.size else float("nan")


@dataclass(frozen=True)
class TaskRanking:
    """Everything computed for one task."""

    data: TaskData
    ranks: dict[str, np.ndarray]  # method -> rank per algorithm (aligned with data.algorithms)
    bootstrap: BootstrapRanks
    p_values: np.ndarray  # [a, b]: one-sided p that a is better than b (diagonal NaN)
    p_holm: np.ndarray  # the same, Holm-adjusted over the task's ordered pairs

    @property
    def task(self) -> str:
        return self.data.task

    @property
    def algorithms(self) -> list[str]:
        return self.data.algorithms

    @property
    def n_cases(self) -> int:
        return len(self.data.cases)

    def order(self) -> list[int]:
        """Algorithm indices by observed mean-then-rank rank, then median bootstrap rank, then input order."""
        keys = np.lexsort((np.arange(len(self.algorithms)), self.bootstrap.median, self.ranks["mean_then_rank"]))
        return [int(i) for i in keys]

    def winners(self, method: str) -> list[str]:
        """The algorithms ranked first by ``method`` (several when tied)."""
        return [a for a, r in zip(self.algorithms, self.ranks[method], strict=True) if r == 1]


@dataclass(frozen=True)
class Settings:
    smaller_better: bool
    n_boot: int
    seed: int
    na_value: float | None
    alpha: float = ALPHA


@dataclass(frozen=True)
class RankingResult:
    """The analysis of every task plus the consensus (mean mean-then-rank rank over tasks)."""

    tasks: dict[str, TaskRanking]
    algorithms: list[str]
    consensus: np.ndarray  # (n_algorithms,) mean rank over tasks
    consensus_interval: np.ndarray  # (n_algorithms, 2) percentile bootstrap interval of the mean rank
    settings: Settings

    @property
    def consensus_rank(self) -> np.ndarray:
        return rankdata(self.consensus, method="min").astype(int)


# --------------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------------


def _standard_columns(long_df: pd.DataFrame, columns: tuple[str, str, str, str]) -> pd.DataFrame:
    if len(set(columns)) != len(COLUMNS):
        raise RankingInputError(f"the task, algorithm, case and value columns must differ, got {list(columns)}")
    absent = [c for c in columns if c not in long_df.columns]
    if absent:
        raise RankingInputError(
            f"no column {', '.join(repr(c) for c in absent)} (columns: {', '.join(map(str, long_df.columns))})"
        )
    df = long_df[list(columns)].copy()
    df.columns = list(COLUMNS)
    for key in COLUMNS[:3]:
        empty = df[key].isna()
        if empty.any():
            row = int(np.flatnonzero(empty)[0]) + 1
            raise RankingInputError(f"data row {row}: empty {key} (column {columns[COLUMNS.index(key)]!r})")
        df[key] = df[key].astype(str)
    raw = df["value"]
    df["value"] = pd.to_numeric(raw, errors="coerce").astype(float)
    bad = df["value"].isna() & raw.notna()
    if bad.any():
        r = df[bad].iloc[0]
        raise RankingInputError(
            f"task {r.task!r}, algorithm {r.algorithm!r}, case {r.case!r}: value {raw[bad].iloc[0]!r} is not a number"
        )
    dup = df.duplicated(list(COLUMNS[:3]), keep=False)
    if dup.any():
        r = df[dup].iloc[0]
        raise RankingInputError(f"task {r.task!r}, algorithm {r.algorithm!r}, case {r.case!r}: more than one value")
    return df


def task_matrices(
    long_df: pd.DataFrame,
    *,
    smaller_better: bool = False,
    na_value: float | None = None,
    columns: tuple[str, str, str, str] = COLUMNS,
) -> list[TaskData]:
    """Pivot a long table (``columns``: task, algorithm, case, value) to one cases x algorithms matrix per task.

    Tasks, algorithms and cases keep their order of first appearance; every task has every algorithm of the
    table. NaN, infinite and absent values raise :class:`RankingInputError` naming the first one, unless
    ``na_value`` replaces them.
    """
    df = _standard_columns(long_df, columns)
    algorithms = list(dict.fromkeys(df["algorithm"]))
    if len(algorithms) < 2:
        raise RankingInputError(f"need at least 2 algorithms to rank, found {len(algorithms)}")
    out = []
    for task, sub in df.groupby("task", sort=False):
        cases = list(dict.fromkeys(sub["case"]))
        values = sub.pivot(index="case", columns="algorithm", values="value").reindex(index=cases, columns=algorithms)
        matrix = values.to_numpy(dtype=float)
        missing = ~np.isfinite(matrix)
        if missing.any() and na_value is None:
            i, j = np.argwhere(missing)[0]
            raise RankingInputError(
                f"task {task!r}: no finite value for algorithm {algorithms[j]!r} on case {cases[i]!r} "
                f"({int(missing.sum())} missing in this task; give na_value / --na-value to replace them)"
            )
        matrix = np.where(missing, na_value if na_value is not None else np.nan, matrix)
        scores = -matrix if smaller_better else matrix
        out.append(TaskData(str(task), algorithms, cases, matrix, scores, int(missing.sum())))
    return out


# --------------------------------------------------------------------------------------------------
# Ranking methods (scores: cases x algorithms, higher is better; ranks: 1 best, 'min' ties)
# --------------------------------------------------------------------------------------------------


def rank_descending(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Ranks of ``x`` along ``axis``, the highest value rank 1, ties sharing the best rank ('min')."""
    return rankdata(-np.asarray(x, dtype=float), method="min", axis=axis).astype(int)


def mean_then_rank(scores: np.ndarray) -> np.ndarray:
    """Rank the algorithms by their mean score over cases."""
    return rank_descending(scores.mean(axis=0))


def median_then_rank(scores: np.ndarray) -> np.ndarray:
    """Rank the algorithms by their median score over cases."""
    return rank_descending(np.median(scores, axis=0))


def rank_then_mean(scores: np.ndarray) -> np.ndarray:
    """Rank the algorithms on every case ('min' ties), average each algorithm's ranks, rank the averages."""
    mean_rank = rank_descending(scores, axis=1).mean(axis=0)
    return rankdata(mean_rank, method="min").astype(int)


def one_sided_wilcoxon(diff: np.ndarray) -> float:
    """p of the paired Wilcoxon signed-rank test that the differences are shifted above 0 (1.0 when all are 0).

    As challengeR calls R's ``wilcox.test(x, y, paired = TRUE, exact = FALSE)``: zero differences dropped, the
    normal approximation with the tie correction of the variance and a continuity correction, whatever the
    number of cases (scipy's own choice, ``method='auto'``, would differ by sample size and version). No
    non-zero difference (scipy gives NaN, challengeR then counts no win) means no evidence: p = 1.
    """
    diff = np.asarray(diff, dtype=float)
    nonzero = diff[diff != 0]
    if nonzero.size == 0:
        return 1.0
    return float(wilcoxon(nonzero, alternative="greater", correction=True, method="asymptotic").pvalue)


def pairwise_p_values(scores: np.ndarray) -> np.ndarray:
    """``p[a, b]``: one-sided paired Wilcoxon p that algorithm a scores higher than b (unadjusted; NaN diagonal)."""
    n = scores.shape[1]
    p = np.full((n, n), np.nan)
    for a in range(n):
        for b in range(a + 1, n):
            diff = scores[:, a] - scores[:, b]
            p[a, b] = one_sided_wilcoxon(diff)
            p[b, a] = one_sided_wilcoxon(-diff)
    return p


def test_then_rank(scores: np.ndarray, alpha: float = ALPHA, p_values: np.ndarray | None = None) -> np.ndarray:
    """Rank by the number of other algorithms each one beats (unadjusted one-sided p <= ``alpha``, as challengeR's
    testThenRank); more wins, better rank. ``p_values`` (from :func:`pairwise_p_values`) saves recomputing them."""
    p = pairwise_p_values(scores) if p_values is None else p_values
    wins = np.sum(np.nan_to_num(p, nan=1.0) <= alpha, axis=1)
    return rank_descending(wins)


def holm_matrix(p_values: np.ndarray) -> np.ndarray:
    """Holm-adjusted p over all off-diagonal entries of a square p matrix (diagonal stays NaN)."""
    off = ~np.eye(len(p_values), dtype=bool)
    adjusted = np.full_like(p_values, np.nan)
    adjusted[off] = holm(p_values[off].tolist())
    return adjusted


# --------------------------------------------------------------------------------------------------
# Bootstrap rank stability
# --------------------------------------------------------------------------------------------------


def bootstrap_ranks(scores: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Mean-then-rank ranks of ``n_boot`` resamples of the cases (rows of ``scores``): (n_boot, n_algorithms).

    The n_boot x n_cases index matrix is drawn at once (``rng.integers``); means are gathered in chunks of
    resamples only to bound memory, which does not change the result.
    """
    n_cases, n_alg = scores.shape
    index = rng.integers(0, n_cases, size=(n_boot, n_cases))
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n_cases * n_alg))
    means = np.concatenate([scores[index[s : s + chunk]].mean(axis=1) for s in range(0, n_boot, chunk)])
    return rank_descending(means, axis=1)


def rank_frequency(ranks: np.ndarray) -> np.ndarray:
    """``[a, r - 1]``: the share of rows of ``ranks`` (resamples x algorithms) in which algorithm a has rank r."""
    n_alg = ranks.shape[1]
    return (ranks[:, :, None] == np.arange(1, n_alg + 1)).mean(axis=0)


def kendall_tau_b(ranks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of every row of ``ranks`` against ``reference`` (as scipy.stats.kendalltau; NaN when
    either ranking is all ties), from the signs of the differences over all algorithm pairs.

    tau-b rather than tau-a because bootstrap rankings have ties (equal means); it equals tau-a without ties.
    """
    i, j = np.triu_indices(ranks.shape[1], k=1)
    sign_boot = np.sign(ranks[:, i] - ranks[:, j])
    sign_ref = np.sign(reference[i] - reference[j])
    numerator = sign_boot @ sign_ref
    denominator = np.sqrt(np.count_nonzero(sign_boot, axis=1) * float(np.count_nonzero(sign_ref)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def summarise_bootstrap(ranks: np.ndarray, observed: np.ndarray, seed: int = 0) -> BootstrapRanks:
    """Frequencies, median, 95% interval and tau of bootstrap ``ranks`` against the ``observed`` ranking.

    The interval's bounds are empirical quantiles (numpy ``inverted_cdf``, R's type 1), so they are ranks that
    occurred: [1, 1] means rank 1 in at least 97.5% of the resamples.
    """
    interval = np.quantile(ranks, [0.025, 0.975], axis=0, method="inverted_cdf").T.astype(int)
    return BootstrapRanks(
        n=len(ranks),
        seed=seed,
        ranks=ranks,
        frequency=rank_frequency(ranks),
        median=np.median(ranks, axis=0),
        interval=interval,
        tau=kendall_tau_b(ranks, observed),
    )


def task_rng(seed: int, task: str) -> np.random.Generator:
    """The generator of one task's bootstrap: ``default_rng([seed, crc32(task)])``, so a task's resamples depend
    on the seed and its name only, not on the other tasks of the table."""
    return np.random.default_rng([seed, zlib.crc32(task.encode("utf-8"))])


# --------------------------------------------------------------------------------------------------
# Whole analysis
# --------------------------------------------------------------------------------------------------


def rank_task(data: TaskData, n_boot: int = 1000, seed: int = 0, alpha: float = ALPHA) -> TaskRanking:
    """All four rankings, the bootstrap and the pairwise tests of one task."""
    p = pairwise_p_values(data.scores)
    ranks = {
        "mean_then_rank": mean_then_rank(data.scores),
        "median_then_rank": median_then_rank(data.scores),
        "rank_then_mean": rank_then_mean(data.scores),
        "test_then_rank": test_then_rank(data.scores, alpha, p_values=p),
    }
    boot = bootstrap_ranks(data.scores, n_boot, task_rng(seed, data.task))
    summary = summarise_bootstrap(boot, ranks["mean_then_rank"], seed)
    return TaskRanking(data, ranks, summary, p, holm_matrix(p))


def consensus(tasks: list[TaskRanking]) -> tuple[np.ndarray, np.ndarray]:
    """Mean mean-then-rank rank of each algorithm over tasks and its 95% percentile interval over the bootstrap
    replicates (replicate b averages replicate b of every task, each task resampled within itself)."""
    observed = np.mean([t.ranks["mean_then_rank"] for t in tasks], axis=0)
    replicates = np.mean([t.bootstrap.ranks for t in tasks], axis=0)
    interval = np.percentile(replicates, [2.5, 97.5], axis=0).T
    return observed, interval


def analyse(
    long_df: pd.DataFrame,
    *,
    smaller_better: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
    na_value: float | None = None,
    columns: tuple[str, str, str, str] = COLUMNS,
    alpha: float = ALPHA,
) -> RankingResult:
    """Rank the algorithms of every task of a long table (one row per task, algorithm, case, value).

    ``columns`` names the table's task, algorithm, case and value columns; ``smaller_better`` for errors and
    distances; ``na_value`` replaces missing values (else they raise :class:`RankingInputError`); ``n_boot``
    case resamples per task, seeded by ``seed`` (see :func:`task_rng`).
    """
    if n_boot < 1:
        raise RankingInputError(f"the number of bootstrap resamples must be at least 1, got {n_boot}")
    if seed < 0:
        raise RankingInputError(f"the seed must be a non-negative integer, got {seed}")
    if na_value is not None and not np.isfinite(na_value):
        raise RankingInputError(f"the replacement for missing values must be a finite number, got {na_value}")
    matrices = task_matrices(long_df, smaller_better=smaller_better, na_value=na_value, columns=columns)
    tasks = [rank_task(m, n_boot, seed, alpha) for m in matrices]
    mean_rank, interval = consensus(tasks)
    return RankingResult(
        tasks={t.task: t for t in tasks},
        algorithms=matrices[0].algorithms,
        consensus=mean_rank,
        consensus_interval=interval,
        settings=Settings(smaller_better, n_boot, seed, na_value, alpha),
    )


def claim_first_supported(result: RankingResult, task: str, algorithm: str) -> bool:
    """True only if ``algorithm``'s 95% bootstrap rank interval on ``task`` is [1, 1]."""
    if task not in result.tasks:
        raise KeyError(f"no task {task!r} (tasks: {', '.join(result.tasks)})")
    t = result.tasks[task]
    if algorithm not in t.algorithms:
        raise KeyError(f"no algorithm {algorithm!r} (algorithms: {', '.join(t.algorithms)})")
    low, high = t.bootstrap.interval[t.algorithms.index(algorithm)]
    return bool(low == 1 and high == 1)
