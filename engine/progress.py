"""What a training run shows while it runs, and how it stops when a scheduler asks it to.

- ``OUT/progress.json`` (:func:`write_progress`): rewritten atomically after every epoch by the process that
  writes the run's files: the epoch, of how many, that epoch's seconds and the mean so far, its validation Dice,
  the epoch ``resume.pt`` holds, and every earlier interruption of the run. It is what ``python -m pipeline.grid``
  shows; it is not a DVC output and is deleted when the run finishes (git ignores it meanwhile).
- :class:`StopSignals`: SIGTERM (a SLURM job cancelled, requeued or preempted; ``kill``) and SIGUSR2 (submitit's
  warning ahead of the time limit) ask the run to stop at the end of the epoch in progress, after saving
  ``resume.pt``; a signal that comes again changes nothing (SLURM signals every process of a job, and the grid's
  job passes the signal on as well). Ctrl-C stops at once, as before; so does SIGKILL, which SLURM sends
  ``KillWait`` seconds after SIGTERM: the run then continues from the last periodic ``resume.pt``.
- :func:`resumption`: when a run continues from ``resume.pt``, the epochs trained after that checkpoint and lost
  (the ``epoch`` of the interrupted attempt's progress.json minus the checkpoint's), and their seconds. The list
  goes into progress.json and, once the run finishes, into ``train.json`` (key ``resumed``, absent when the run
  was never interrupted).
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import threading
import time
from pathlib import Path

from core.fsutil import atomic_write_bytes, atomic_write_json

PROGRESS_FILE = "progress.json"
LOG_COLUMNS = ["epoch", "lr", "train_loss", "train_dice", "val_dice", "val_loss", "seconds"]
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2)
STOPPED_EXIT = 128  # + the signal number, as a shell reports a process ended by that signal


class Stopped(Exception):
    """The run stopped on a signal after saving ``resume.pt`` (it continues when the command runs again)."""

    def __init__(self, signum: int, epoch: int, epochs: int) -> None:
        self.signum, self.epoch = signum, epoch
        name = signal.Signals(signum).name
        super().__init__(f"{name}: stopped after epoch {epoch} of {epochs}; resume.pt holds it, run again to continue")

    @property
    def exit_code(self) -> int:
        return STOPPED_EXIT + self.signum


class StopSignals:
    """Within ``with``: SIGTERM and SIGUSR2 are recorded in ``received`` (the first one) instead of ending the
    process. Outside the main thread it records nothing (Python delivers signals to the main thread only)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, object] = {}

    def _record(self, signum, frame) -> None:  # noqa: ARG002 - a signal handler: no printing here
        if self.received is None:
            self.received = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._old = {sig: signal.signal(sig, self._record) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


def write_log(path: Path, rows: list[dict]) -> None:
    """``log.csv``: one row per epoch (:data:`LOG_COLUMNS`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def read_progress(out: Path) -> dict | None:
    """``OUT/progress.json``, or None when absent or unreadable."""
    try:
        info = json.loads((Path(out) / PROGRESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def write_progress(out: Path, epochs: int, log: list[dict], resume_epoch: int | None, resumed: list[dict]) -> None:
    """``OUT/progress.json`` after ``len(log)`` epochs (see the module's docstring)."""
    last = log[-1] if log else {}
    seconds = [r["seconds"] for r in log]
    info = {
        "epoch": len(log),
        "epochs": epochs,
        "seconds": last.get("seconds"),
        "mean_epoch_seconds": round(sum(seconds) / len(seconds), 3) if seconds else None,
        "trained_seconds": round(sum(seconds), 3),
        "val_dice": last.get("val_dice"),
        "resume_epoch": resume_epoch,
        "resumed": resumed,
        "pid": os.getpid(),
        "time": time.time(),
    }
    atomic_write_json(Path(out) / PROGRESS_FILE, info)


def resumption(out: Path, log: list[dict]) -> list[dict]:
    """The run's interruptions, this one included, as it continues from a resume.pt that holds ``log``."""
    before = read_progress(out) or {}
    history = [r for r in before.get("resumed", []) if isinstance(r, dict)]
    reached = max(len(log), int(before.get("epoch") or 0))
    kept_seconds = sum(r["seconds"] for r in log)
    lost_seconds = max(0.0, float(before.get("trained_seconds") or kept_seconds) - kept_seconds)
    lost = {"time": time.time(), "from_epoch": len(log), "lost_epochs": reached - len(log)}
    return [*history, {**lost, "lost_seconds": round(lost_seconds, 3)}]


def remove_progress(out: Path) -> None:
    (Path(out) / PROGRESS_FILE).unlink(missing_ok=True)
