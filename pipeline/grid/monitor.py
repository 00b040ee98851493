"""What the grid reports: progress lines (each running training's epoch and ETA), the summary table and the
result of a grid run (:class:`Outcome`, also written as ``summary.json``)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from engine.progress import read_progress
from pipeline.grid.jobs import read_record
from pipeline.grid.outputs import dice_of, progress_file
from pipeline.grid.states import BLOCKED, CACHED, DONE, FAILED, NOT_RUN, UPTODATE

if TYPE_CHECKING:
    from pipeline.grid.dvcrepo import Plan
    from pipeline.grid.scheduler import Chain


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def tail(path: Path | str, lines: int = 15) -> str:
    """The last ``lines`` lines of a text file ('' when absent)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    text = text.replace("\r", "\n")  # progress bars
    return "\n".join([ln for ln in text.splitlines() if ln.strip()][-lines:])


def user_error_line(log: Path | str, returncode: int | None) -> str | None:
    """The ``error: ...`` line a stage printed when it refused its input (exit status 2, core.cli's
    convention), else None."""
    if returncode != 2:
        return None
    last = tail(log, 1)
    return last if last.startswith("error: ") else None


def epoch_progress(progress: Path | None, log: Path, started: float | None) -> str:
    """``epoch k/N, val Dice d %, ETA h:mm:ss`` from a training's progress.json (one written before ``started``
    belongs to an earlier run and is ignored); else how long the stage has been running."""
    info = None
    try:
        if progress is not None and (started is None or progress.stat().st_mtime >= started - 1):
            info = read_progress(progress.parent)
    except OSError:
        info = None
    if not info or not info.get("epochs"):
        since = f" {fmt_s(time.time() - started)}" if started is not None else ""
        return f"running{since}" if log.exists() else "starting"
    k, n, mean = int(info.get("epoch") or 0), int(info["epochs"]), info.get("mean_epoch_seconds")
    text = f"epoch {k}/{n}"
    if info.get("val_dice") is not None:
        text += f", val Dice {float(info['val_dice']):.2f} %"
    if mean is not None:
        text += f", ETA {fmt_s(float(mean) * (n - k))}"
    resumed = info.get("resumed") or []
    if resumed:
        lost = sum(int(r.get("lost_epochs", 0)) for r in resumed)
        text += f", resumed {len(resumed)}x ({lost} epoch{'s' * (lost != 1)} lost)"
    return text


@dataclass
class Outcome:
    chains: list[Chain] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if any(s in NOT_RUN for s in self.states.values()) else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "interrupted": self.interrupted,
            "stages": self.states,
            "runs": [
                {
                    "stages": c.names,
                    "status": c.status,
                    "seconds": c.wall(),
                    "dice": dice_of(c.stages) if c.status == DONE else None,
                    "where": c.where,
                    "estimate_seconds": c.estimate,
                    "train_seconds": train_seconds(c),
                    "requeued": c.requeues,
                    "epochs_lost": c.lost_epochs,
                    "returncodes": [s.returncode for s in c.result.stages] if c.result else None,
                    "threads_log": [[t, n] for t, n in c.threads_log],  # (time, thread budget) at each change
                }
                for c in self.chains
            ],
        }


def train_seconds(chain: Chain) -> float | None:
    """Wall seconds of the job's first stage (its training, in a train -> evaluate job)."""
    if chain.result is None or not chain.result.stages:
        return None
    first = chain.result.stages[0]
    return first.end - first.start if first.start is not None and first.end is not None else None


def estimate_error(chains: list[Chain]) -> tuple[float, int] | None:
    """Mean absolute relative error of the finished jobs' estimates against their trainings' wall times, and how
    many jobs it covers (only jobs that kept one thread: the estimates are one-thread times)."""
    errors = []
    for c in chains:
        real = train_seconds(c)
        if c.status == DONE and c.estimate and real and {t for _, t in c.threads_log} <= {1}:
            errors.append(abs(c.estimate - real) / real)
    return (sum(errors) / len(errors), len(errors)) if errors else None


class Monitor:
    """What the grid prints: a timestamped line per event, periodic progress, the summary."""

    def __init__(self, out: TextIO, t0: float) -> None:
        self.out, self.t0 = out, t0

    def say(self, msg: str) -> None:
        elapsed = int(time.time() - self.t0)
        print(f"[{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}] {msg}", file=self.out, flush=True)

    def progress(self, plan: Plan, queued: int, running: list[Chain], on_slurm: bool) -> None:
        counts: dict[str, int] = {}
        for st in plan.state.values():
            counts[st] = counts.get(st, 0) + 1
        order = ["queued", "running", DONE, CACHED, FAILED, BLOCKED, UPTODATE, "undecided"]
        parts = [f"{counts[k]} {'to check' if k == 'undecided' else k}" for k in order if counts.get(k)]
        self.say("stages: " + ", ".join(parts) + f"  (jobs: {queued} queued, {len(running)} running)")
        for chain in running:
            i = chain.current()
            stage = chain.stages[i]
            what = epoch_progress(progress_file(stage), chain.logs[i], chain.seen.get(i, chain.submitted))
            attempts = read_record(chain.record)["attempts"] if chain.record else []
            if on_slurm and attempts and attempts[-1].get("stopped"):
                what = f"requeued ({attempts[-1]['stopped']}), waiting for SLURM to start it again"
            elif on_slurm and not attempts and chain.job.state == "PENDING":
                what = "waiting in SLURM's queue"
            elif len(attempts) > 1:
                what += f"; requeued {len(attempts) - 1}x"
            where = chain.where + (f", now {chain.threads} threads" if len(chain.threads_log) > 1 else "")
            print(f"           {stage.name}: {what}  ({where})", file=self.out, flush=True)

    def table(self, chains: list[Chain]) -> None:
        from tabulate import tabulate

        rows = []
        requeued = any(c.requeues or c.lost_epochs for c in chains)
        estimated = any(c.estimate for c in chains)
        for c in chains:
            dice = dice_of(c.stages) if c.status == DONE else None
            rows.append([c.label, c.status, fmt_s(c.wall()), "-" if dice is None else f"{dice:.2f}", c.where])
            rows[-1][3:3] = [fmt_s(train_seconds(c) if c.estimate else None), fmt_s(c.estimate)] if estimated else []
            rows[-1][-1:-1] = [c.requeues, c.lost_epochs] if requeued else []
        if rows:
            cols = ["train", "estimate (1 thread)"] * estimated + ["test Dice %"]
            headers = ["run", "status", "wall", *cols, *(["requeued", "epochs lost"] * requeued), "where"]
            print("", file=self.out)
            print(tabulate(rows, headers=headers), file=self.out)
        err = estimate_error(chains)
        if err is not None:
            print(
                f"estimates: mean error {100 * err[0]:.0f} % of the training's time ({err[1]} one-thread runs)",
                file=self.out,
            )

    def summary(self, outcome: Outcome, plan: Plan) -> None:
        self.table(outcome.chains)
        counts: dict[str, int] = {}
        for st in outcome.states.values():
            counts[st] = counts.get(st, 0) + 1
        print(
            f"\ngrid: {', '.join(f'{n} {k}' for k, n in sorted(counts.items()))} stages "
            f"in {fmt_s(outcome.seconds)}; dvc.lock records every finished stage.",
            file=self.out,
        )
        for c in outcome.chains:
            self.failures(c, plan)
        blocked = [s.name for s, st in plan.state.items() if st == BLOCKED]
        if blocked:
            shown = ", ".join(blocked[:8]) + (f" and {len(blocked) - 8} more" if len(blocked) > 8 else "")
            print(f"\nnot run (they need a failed stage): {shown}", file=self.out)
        if outcome.interrupted:
            print("\ninterrupted: the finished stages are recorded; run the grid again to go on.", file=self.out)
        elif outcome.exit_code:
            print("\nrun the grid again to retry the failed stages (finished ones are not rerun).", file=self.out)
        elif plan.excluded:
            print(f"\nleft to `dvc repro`: {', '.join(plan.excluded)}", file=self.out)
        self.out.flush()

    def failures(self, c: Chain, plan: Plan) -> None:
        """Each failed stage of a job: its one-line reason and the end of its log."""
        for i, stage in enumerate(c.stages):
            if plan.state.get(stage) != FAILED:
                continue
            res = c.result.stages[i] if c.result else None
            err = c.errors.get(stage.name)
            user_error = user_error_line(c.logs[i], res.returncode if res else None)
            if user_error and not err:  # the stage refused its input: its one line says it all
                print(f"\nFAILED {stage.name}: {user_error}", file=self.out)
                continue
            why = err or (f"exit status {res.returncode}" if res and res.returncode is not None else None)
            why = why or (c.result.stopped if c.result and c.result.stopped else c.crash or "did not run")
            print(f"\nFAILED {stage.name} ({why}); log {c.logs[i]}:", file=self.out)
            text = tail(c.logs[i]) or (c.crash or "")
            print("    " + text.replace("\n", "\n    "), file=self.out)
