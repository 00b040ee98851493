"""``reproduction.md``: this run's results against those recorded in git (``report.compare_to``, default HEAD).

Per run, the means of ``metrics.json`` (the six paper metrics and HD95) are compared with the recorded file's
(:mod:`reports.recorded`). When none differs, one line says the results are the same as recorded at the revision
(named by the last commit that changed the recorded files, so that unrelated commits leave this file as it is).
Otherwise, per dataset and model with a run that differs:

- the mean test Dice recorded and now (means over the seeds), how far it moved (points), and whether each new
  seed's mean lies inside that seed's recorded 95% bootstrap interval (``metrics.json``'s ``ci95_low``/``high``);
- per dataset, whether the mean-then-rank ranking of the main models by the recorded means differs from this run's,
  and for each model whose rank moved, whether its recorded rank lies inside this run's 95% bootstrap rank
  interval (ranking.md): inside, the change is within what resampling the test images gives.

Where git, the revision or the files are unavailable the section says so in one line; runs without a recorded file
are counted and named.
"""

from __future__ import annotations

import numpy as np

from engine.metric_names import PAPER_METRICS
from reports import provenance, summary
from reports.inputs import Inputs
from reports.ranking.analysis import rank_descending
from reports.ranking_report import Ranking
from reports.recorded import Recorded
from reports.table import fmt, markdown_table

COMPARED = (*PAPER_METRICS, "hd95")
TOLERANCE = 1e-9  # a mean that moved less than this is the same (JSON round trips are exact; this is for safety)
SHOWN = 5  # runs named in the line listing runs without a record


def _mean(metrics: dict | None, key: str) -> float | None:
    entry = (metrics or {}).get(key)
    value = entry.get("mean") if isinstance(entry, dict) else None
    return float(value) if isinstance(value, int | float) else None


def moved(now: dict, then: dict) -> list[str]:
    """The metrics whose mean differs between two ``metrics.json`` (present in both)."""
    out = []
    for key in COMPARED:
        a, b = _mean(now, key), _mean(then, key)
        if a is not None and b is not None and abs(a - b) > TOLERANCE:
            out.append(key)
    return out


def inside(now: dict, then: dict) -> bool | None:
    """Whether the new mean Dice lies inside the recorded 95% interval (None: the record has no interval)."""
    entry, value = then.get("dice"), _mean(now, "dice")
    if not isinstance(entry, dict) or value is None or not {"ci95_low", "ci95_high"} <= set(entry):
        return None
    return bool(float(entry["ci95_low"]) <= value <= float(entry["ci95_high"]))


def _inside_text(flags: dict[int, bool | None], n_seeds: int) -> str:
    known = {s: f for s, f in flags.items() if f is not None}
    if not known:
        return "– (no recorded interval)"
    if n_seeds == 1:
        return "inside" if next(iter(known.values())) else "outside"
    out = [s for s, f in known.items() if not f]
    if not out:
        return f"inside ({len(known)} of {n_seeds} seeds)"
    seeds = f"seed{'s' if len(out) > 1 else ''} {', '.join(map(str, out))}"
    return f"outside for {seeds} ({len(known) - len(out)} of {n_seeds} inside)"


def run_rows(inp: Inputs, rec: Recorded, changed: set[tuple[str, str, int]]) -> list[list[str]]:
    """One row per (dataset, model) with a changed run: Dice recorded, now, moved, inside, other metrics moved."""
    rows = []
    for d in inp.datasets:
        for m in inp.ordered(inp.models):
            keys = [(d, m, s) for s in inp.seeds]
            if not any(k in changed for k in keys):
                continue
            now = [inp.runs[k].metrics for k in keys]
            then = [rec.metrics[k] for k in keys]
            if any(t is None for t in then):
                continue  # counted with the runs not recorded
            before = float(np.mean([_mean(t, "dice") for t in then]))
            after = float(np.mean([_mean(n, "dice") for n in now]))
            others = sorted({k for n, t in zip(now, then, strict=True) for k in moved(n, t)} - {"dice"})
            flags = {k[2]: inside(n, t) for k, n, t in zip(keys, now, then, strict=True)}
            delta = fmt(after - before)
            rows.append(
                [
                    inp.dataset_names[d],
                    inp.names[m],
                    fmt(before),
                    fmt(after),
                    delta if delta.startswith("-") or float(delta) == 0 else "+" + delta,
                    _inside_text(flags, len(inp.seeds)),
                    ", ".join(others) or "–",
                ]
            )
    return rows


def ranking_lines(inp: Inputs, rec: Recorded, ranking: Ranking | None) -> list[str]:
    """Per dataset: whether the ranking by the recorded means differs from this run's, and whether each change
    lies inside this run's 95% bootstrap rank interval."""
    if ranking is None:
        return []
    lines = []
    for d in inp.datasets:
        models, t = list(ranking.labels), ranking.task(d)
        then = [[_mean(rec.metrics.get((d, m, s)), "dice") for s in inp.seeds] for m in models]
        if any(v is None for row in then for v in row):
            lines.append(f"- {inp.dataset_names[d]}: ranking not compared (not every main model is recorded).")
            continue
        recorded = rank_descending(np.array([np.mean(row) for row in then]))
        current = [np.mean([_mean(inp.runs[(d, m, s)].metrics, "dice") for s in inp.seeds]) for m in models]
        now = dict(zip(models, map(int, rank_descending(np.array(current))), strict=True))
        moves = []
        for m, r in zip(models, recorded, strict=True):
            if int(r) != now[m]:
                lo, hi = t.bootstrap.interval[t.algorithms.index(ranking.labels[m])]
                where = "inside" if lo <= r <= hi else "outside"
                moves.append(
                    f"{ranking.labels[m]} {int(r)} → {now[m]} (95% rank interval now [{lo}, {hi}]: the recorded rank "
                    f"lies {where})"
                )
        if not moves:
            lines.append(f"- {inp.dataset_names[d]}: the ranking (mean then rank) is the recorded one.")
            continue
        verdict = (
            "every change lies inside the rank intervals: within what resampling the test images gives"
            if all(mv.endswith("inside)") for mv in moves)
            else "a change lies outside the rank intervals: more than resampling the test images gives"
        )
        lines.append(f"- {inp.dataset_names[d]}: the ranking changed: {'; '.join(moves)}; {verdict}.")
    return lines


def comparison_lines(inp: Inputs, rec: Recorded, ranking: Ranking | None) -> list[str]:
    """The body of the section (module docstring)."""
    where = f"`{rec.rev}`" + (f" (last changed in {rec.commit})" if rec.commit else "")
    if rec.problem:
        return [f"Not compared with the results recorded at `{rec.rev}`: {rec.problem}."]
    absent = [k for k, v in rec.metrics.items() if v is None]
    if len(absent) == len(rec.metrics):
        return [f"Not compared: no run of this report has a metrics.json recorded at `{rec.rev}`."]
    changed = {k for k, v in rec.metrics.items() if v is not None and moved(inp.runs[k].metrics, v)}
    lines = []
    if absent:
        named = ", ".join(f"{d}/{m}/seed{s}" for d, m, s in absent[:SHOWN])
        more = f" and {len(absent) - SHOWN} more" if len(absent) > SHOWN else ""
        lines += [f"Not recorded at `{rec.rev}` (not compared): {len(absent)} runs: {named}{more}.", ""]
    if not changed:
        return [f"Same as recorded at {where}: every compared run's metrics equal the recorded ones.", "", *lines]
    headers = ["Dataset", "Model", "recorded Dice (%)", "Dice now (%)", "moved (points)"]
    headers += ["inside the recorded 95% CI", "other metrics moved"]
    total = len(rec.metrics) - len(absent)
    return [
        f"Differs from the results recorded at {where}: {len(changed)} of {total} compared runs.",
        "",
        *lines,
        markdown_table(headers, run_rows(inp, rec, changed), "llrrrll"),
        "",
        "Ranking of the main models, recorded against now (mean then rank: each model's mean Dice over the seeds, "
        "from metrics.json):",
        "",
        *ranking_lines(inp, rec, ranking),
    ]


def build(inp: Inputs, ranking: Ranking | None) -> str:
    """``reproduction.md``."""
    head = [
        "# Reproduction: this run against the recorded results",
        "",
        "Each run's `results/<D>/<M>/seed<S>/metrics.json` against the one committed at `report.compare_to` of "
        "params.yaml (default `HEAD`): how far each mean test Dice moved, whether the new mean lies inside the "
        "recorded 95% bootstrap confidence interval (per seed), and whether the ranking of the main models changed "
        "and, if so, whether that lies inside this run's 95% bootstrap rank intervals (ranking.md). The record is "
        "named by the last commit that changed its files.",
        "",
        summary.setting_text(inp, inp.models),
        "",
    ]
    if inp.recorded is None:
        body = ["Not compared: `report.compare_to` is null in params.yaml."]
    else:
        body = comparison_lines(inp, inp.recorded, ranking)
    return "\n".join([*head, *body, "", provenance.markdown_block(inp.provenance)])
