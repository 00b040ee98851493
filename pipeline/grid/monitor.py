"""What the grid reports: progress lines (each running training's epoch and ETA), the summary table and the
result of a grid run (:class:`Outcome`, also written as ``summary.json``)."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.grid.dvcrepo import dice_of
from pipeline.grid.states import BLOCKED, CACHED, DONE, FAILED, NOT_RUN, UPTODATE

if TYPE_CHECKING:
    from pipeline.grid.scheduler import Chain

EPOCH_RE = re.compile(r"^epoch (\d+)/(\d+)\b", re.MULTILINE)


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


def epoch_progress(log: Path, csv_file: Path | None, started: float | None) -> str:
    """``epoch k/N, ETA h:mm:ss`` from a training log (``epoch k/N`` lines) and its per-epoch log.csv."""
    found = EPOCH_RE.findall(tail(log, 200))
    if not found:
        since = f" {fmt_s(time.time() - started)}" if started is not None else ""
        return f"running{since}" if log.exists() else "starting"
    k, n = (int(v) for v in found[-1])
    per_epoch = None
    if csv_file is not None and csv_file.exists():
        try:
            import csv

            with open(csv_file, encoding="utf-8") as fh:
                seconds = [float(row["seconds"]) for row in csv.DictReader(fh) if row.get("seconds")]
            per_epoch = sum(seconds) / len(seconds) if seconds else None
        except (OSError, ValueError, KeyError):
            per_epoch = None
    if per_epoch is None and started is not None and k:
        per_epoch = (time.time() - started) / k
    eta = per_epoch * (n - k) if per_epoch is not None else None
    return f"epoch {k}/{n}" + (f", ETA {fmt_s(eta)}" if eta is not None else "")


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
                    "returncodes": [s.returncode for s in c.result.stages] if c.result else None,
                }
                for c in self.chains
            ],
        }


class Monitoring:
    """The coordinator's reporting side (a part of :class:`pipeline.grid.coordinator.Grid`)."""

    def say(self, msg: str) -> None:
        elapsed = int(time.time() - self.t0)
        print(f"[{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}] {msg}", file=self.out, flush=True)

    def progress(self) -> None:
        counts: dict[str, int] = {}
        for st in self.state.values():
            counts[st] = counts.get(st, 0) + 1
        order = ["queued", "running", DONE, CACHED, FAILED, BLOCKED, UPTODATE, "undecided"]
        parts = [f"{counts[k]} {'to check' if k == 'undecided' else k}" for k in order if counts.get(k)]
        self.say("stages: " + ", ".join(parts) + f"  (jobs: {len(self.queue)} queued, {len(self.running)} running)")
        for chain in self.running:
            i = chain.current()
            stage = chain.stages[i]
            csv_file = next((Path(o.fs_path) for o in stage.outs if Path(str(o.fs_path)).name == "log.csv"), None)
            started = chain.seen.get(i, chain.submitted)
            what = epoch_progress(chain.logs[i], csv_file, started)
            print(f"           {stage.addressing}: {what}  ({chain.where})", file=self.out, flush=True)

    def summary(self, outcome: Outcome) -> None:
        from tabulate import tabulate

        rows = []
        for c in outcome.chains:
            dice = dice_of(c.stages) if c.status == DONE else None
            rows.append([c.label, c.status, fmt_s(c.wall()), "-" if dice is None else f"{dice:.2f}", c.where])
        if rows:
            print("", file=self.out)
            print(tabulate(rows, headers=["run", "status", "wall", "test Dice %", "where"]), file=self.out)
        counts: dict[str, int] = {}
        for st in outcome.states.values():
            counts[st] = counts.get(st, 0) + 1
        print(
            f"\ngrid: {', '.join(f'{n} {k}' for k, n in sorted(counts.items()))} stages "
            f"in {fmt_s(outcome.seconds)}; dvc.lock records every finished stage.",
            file=self.out,
        )
        for c in outcome.chains:
            for i, stage in enumerate(c.stages):
                if self.state.get(stage) != FAILED:
                    continue
                res = c.result.stages[i] if c.result else None
                err = getattr(c, "errors", {}).get(stage.addressing)
                user_error = user_error_line(c.logs[i], res.returncode if res else None)
                if user_error and not err:  # the stage refused its input: its one line says it all
                    print(f"\nFAILED {stage.addressing}: {user_error}", file=self.out)
                    continue
                why = err or (f"exit status {res.returncode}" if res and res.returncode is not None else None)
                why = why or (c.result.stopped if c.result and c.result.stopped else c.crash or "did not run")
                print(f"\nFAILED {stage.addressing} ({why}); log {c.logs[i]}:", file=self.out)
                text = tail(c.logs[i]) or (c.crash or "")
                print("    " + text.replace("\n", "\n    "), file=self.out)
        blocked = [s.addressing for s, st in self.state.items() if st == BLOCKED]
        if blocked:
            shown = ", ".join(blocked[:8]) + (f" and {len(blocked) - 8} more" if len(blocked) > 8 else "")
            print(f"\nnot run (they need a failed stage): {shown}", file=self.out)
        if outcome.interrupted:
            print("\ninterrupted: the finished stages are recorded; run the grid again to go on.", file=self.out)
        elif outcome.exit_code:
            print("\nrun the grid again to retry the failed stages (finished ones are not rerun).", file=self.out)
        elif self.excluded:
            print(f"\nleft to `dvc repro`: {', '.join(self.excluded)}", file=self.out)
        self.out.flush()
