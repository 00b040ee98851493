"""How busy a finished grid run kept the cores: the periods in which a core sat idle while a job ran.

    python -m pipeline.tools.grid_timeline [PROJECT] [--run RUN_ID] [--cores N]

Reads the grid's record of a run in ``PROJECT/.dvc/tmp/grid/runs/<run>/`` (the newest unless ``--run``): each job's
start and end (``jobs/*.json``), the threads it started with (the summary), and the threads each training applied
at its epoch boundaries when the grid handed it more (its ``train.json`` and the epoch times of its ``log.csv``). It
prints every period with fewer threads in use than cores while at least one job ran, with what ran and, for a
training, how long that was in its epochs: a freed core waits for the next epoch boundary of a running training
(the grid's hand-off), so a period is expected to last at most one epoch of it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from core.cli import run
from core.errors import UserError


@dataclass
class JobSpan:
    """One job of the run: when it ran and its thread budget over time ((time, threads) from its start)."""

    name: str
    start: float
    end: float
    threads: list[tuple[float, int]] = field(default_factory=list)
    epoch_seconds: float | None = None  # median epoch of its training, when it is one

    def threads_at(self, t: float) -> int:
        current = 0
        for when, n in self.threads:
            if when <= t:
                current = n
        return current


def newest_run(project: Path, run_id: str | None) -> Path:
    runs = project / ".dvc" / "tmp" / "grid" / "runs"
    if run_id:
        if not (runs / run_id).is_dir():
            raise UserError(f"{runs / run_id}: no such grid run")
        return runs / run_id
    found = sorted(p for p in runs.glob("*") if (p / "summary.json").exists()) if runs.is_dir() else []
    if not found:
        raise UserError(f"{runs}: no finished grid run (summary.json) here; run the grid first")
    return found[-1]


def training_threads(project: Path, stage: str, end: float) -> tuple[list[tuple[float, int]], float | None]:
    """When a training changed its threads (from its train.json and the epoch times of its log.csv) and its
    median epoch; empty when the stage is not a training with those files."""
    match = re.fullmatch(r"train@(.+)-(.+)-(\d+)", stage)
    if not match:
        return [], None
    for folder in (project / "runs").glob(f"*/{match.group(2)}/seed{match.group(3)}"):
        try:
            record = json.loads((folder / "train.json").read_text(encoding="utf-8"))
            seconds = pd.read_csv(folder / "log.csv")["seconds"].tolist()
        except (OSError, ValueError, KeyError):
            continue
        changes = []
        for entry in record.get("threads") or []:
            first = int(entry["from_epoch"])
            changes.append((end - sum(seconds[first - 1 :]), int(entry["threads"])))
        return changes, statistics.median(seconds) if seconds else None
    return [], None


def job_spans(project: Path, run_dir: Path) -> list[JobSpan]:
    """Every job of the run that started, with its threads over time."""
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    spans = []
    for entry in summary.get("runs", []):
        head = entry["stages"][0]
        try:
            job = json.loads((run_dir / "jobs" / f"{head.replace('/', '_')}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a job that never started (cached, blocked)
        attempts = [a for a in job.get("attempts", []) if a.get("start") is not None and a.get("end") is not None]
        if not attempts:
            continue
        start, end = attempts[0]["start"], attempts[-1]["end"]
        span = JobSpan(head, start, end)
        if entry.get("threads_log"):  # the budgets the grid set; a training applies one at its next epoch
            span.threads = [(start, int(entry["threads_log"][0][1]))]
        else:
            first = re.search(r"(\d+) threads?", entry.get("where") or "")
            span.threads = [(start, int(first.group(1)) if first else 1)]
        train_end = job.get("stages", {}).get(head, {}).get("end") or end
        changes, span.epoch_seconds = training_threads(project, head, train_end)
        span.threads += changes
        spans.append(span)
    return spans


def idle_periods(spans: list[JobSpan], cores: int, min_seconds: float = 1.0) -> list[dict[str, Any]]:
    """Periods with fewer threads in use than ``cores`` while a job ran, longest first."""
    times = sorted({t for s in spans for t in (s.start, s.end, *(w for w, _ in s.threads))})
    periods: list[dict[str, Any]] = []
    for a, b in zip(times, times[1:], strict=False):
        mid = (a + b) / 2
        running = [s for s in spans if s.start <= mid < s.end]
        used = sum(s.threads_at(mid) for s in running)
        if not running or used >= cores:
            continue
        names = sorted(s.name for s in running)
        last = periods[-1] if periods else None
        if last and last["end"] == a and last["running"] == names:
            last["end"] = b
        else:
            epochs = [s.epoch_seconds for s in running if s.epoch_seconds]
            periods.append(
                {
                    "start": a,
                    "end": b,
                    "running": names,
                    "idle_cores": cores - used,
                    "epoch_seconds": min(epochs) if epochs else None,
                }
            )
    for p in periods:
        p["seconds"] = p["end"] - p["start"]
        p["epochs"] = p["seconds"] / p["epoch_seconds"] if p["epoch_seconds"] else None
    return sorted((p for p in periods if p["seconds"] >= min_seconds), key=lambda p: -p["seconds"])


def analyse(project: Path, run_id: str | None = None, cores: int | None = None) -> dict[str, Any]:
    """The run's idle periods and totals, for ``bench_grid`` and the command line."""
    run_dir = newest_run(project, run_id)
    spans = job_spans(project, run_dir)
    cores = cores or os.cpu_count() or 1
    periods = idle_periods(spans, cores)
    t0 = min((s.start for s in spans), default=0.0)
    with_training = [p for p in periods if p["epochs"] is not None]
    return {
        "run": run_dir.name,
        "cores": cores,
        "idle_core_seconds": sum(p["seconds"] * p["idle_cores"] for p in periods),
        "longest_idle_with_a_training_running_epochs": max((p["epochs"] for p in with_training), default=0.0),
        "periods": [{**p, "start": p["start"] - t0, "end": p["end"] - t0} for p in periods],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.tools.grid_timeline", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("project", nargs="?", default=".", type=Path, help="the project the grid ran in")
    parser.add_argument("--run", help="the run id (a folder of .dvc/tmp/grid/runs/; default: the newest)")
    parser.add_argument("--cores", type=int, help="cores the run had (default: this machine's)")
    parser.add_argument("--json", help="also write the periods here, with the machine (docs/benchmarks/)")
    args = parser.parse_args(argv)
    result = analyse(args.project, args.run, args.cores)
    if args.json:
        from pipeline.tools.results import header, write

        title = f"Idle cores in grid run {result['run']}"
        write(args.json, {**header(title, parser.prog, argv, measured_now=False), **result, "rows": result["periods"]})
    print(
        f"grid run {result['run']}, {result['cores']} cores: {result['idle_core_seconds']:.0f} idle core-seconds "
        f"while jobs ran; longest idle period with a training running: "
        f"{result['longest_idle_with_a_training_running_epochs']:.2f} of its epochs"
    )
    for p in result["periods"]:
        epochs = f", {p['epochs']:.2f} epochs of {p['epoch_seconds']:.1f} s" if p["epochs"] is not None else ""
        print(
            f"  {p['start']:7.1f}-{p['end']:7.1f} s: {p['idle_cores']} idle for {p['seconds']:.1f} s{epochs}; "
            f"running {', '.join(p['running'])}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
