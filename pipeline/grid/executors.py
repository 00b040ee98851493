"""Where :mod:`pipeline.grid` runs its jobs: submitit executors, the ``grid:`` settings, and the job itself.

A *job* is a chain of DVC stages (e.g. ``train@D-M-S`` then ``evaluate@D-M-S``) whose commands run one
after the other in one process slot. The coordinator (:mod:`pipeline.grid`) hands jobs to a submitit
executor:

- ``local``: one submitit controller process per job on this machine. On a GPU machine each job gets one
  GPU through ``CUDA_VISIBLE_DEVICES`` (round robin, so ``jobs`` > GPUs puts several jobs on a GPU); the
  CPU cores are shared out as ``OMP_NUM_THREADS`` per job.
- ``slurm``: one sbatch job per chain (partition, time, GPUs, memory and set-up lines from ``grid.slurm``).
- ``debug``: submitit's in-process executor (one job at a time, in the coordinating process).

Every executor runs the same callable, :class:`pipeline.grid.jobs.ChainRunner`. The SLURM specifics (sbatch
options, job states without accounting, the sbatch file) are in :mod:`pipeline.grid.slurm`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.errors import UserError
from engine.params import GridSettings, describe, load_params


class GridSettingsError(UserError):
    """The ``grid:`` section of params.yaml (or a flag overriding it) is wrong."""


def load_grid_settings(params_file: str | os.PathLike, overrides: dict[str, Any] | None = None) -> GridSettings:
    """The validated ``grid:`` section of ``params_file`` (defaults when the file or section is absent),
    with ``overrides`` (command-line flags) applied on top."""
    path = Path(params_file)
    raw: dict[str, Any] = load_params(path).grid.model_dump() if path.exists() else {}
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return GridSettings.model_validate(raw)
    except ValidationError as err:
        raise GridSettingsError(f"{path}: grid.{describe(err)}") from err


# ------------------------------------------------------------------------------------- where jobs run


def cpu_count() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def detect_gpus() -> list[int]:
    """GPU indices: ``CUDA_VISIBLE_DEVICES`` when set, else ``nvidia-smi``'s list, else none (with a warning on
    stderr when ``nvidia-smi`` is there but fails)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v.strip() for v in visible.split(",") if v.strip()]
        if not all(v.isdigit() for v in ids):
            raise GridSettingsError(
                f"CUDA_VISIBLE_DEVICES={visible!r}: give the grid GPU indices (grid.gpus: [0, 1] or --gpus 0,1)"
            )
        return [int(v) for v in ids]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as err:
        # a driver that does not answer: say so, or the grid silently runs everything on the CPU
        detail = (getattr(err, "stderr", None) or getattr(err, "stdout", None) or "").strip().splitlines()
        why = f"{err}" + (f": {detail[0]}" if detail else "")
        print(
            f"warning: nvidia-smi failed ({why}); the grid uses no GPU (set grid.gpus or --gpus to choose)",
            file=sys.stderr,
            flush=True,
        )
        return []
    return [int(line) for line in out.split() if line.strip().isdigit()]


@dataclass(frozen=True)
class Slot:
    """One place a job can run: a GPU (or none) and a number of CPU threads."""

    index: int
    gpu: int | None
    threads: int

    def describe(self) -> str:
        threads = f"{self.threads} thread{'s' * (self.threads != 1)}"
        return f"gpu {self.gpu}, {threads}" if self.gpu is not None else f"cpu, {threads}"


def plan_slots(settings: GridSettings, gpus: list[int] | None = None, cores: int | None = None) -> list[Slot]:
    """The local executor's slots: ``jobs`` of them, GPUs dealt round robin, cores shared out as threads."""
    if gpus is None:
        gpus = [] if settings.gpus == "none" else detect_gpus() if settings.gpus == "auto" else list(settings.gpus)
    cores = cores or cpu_count()
    jobs = settings.jobs or (len(gpus) if gpus else cores)
    threads = settings.threads_per_job or max(1, cores // jobs)
    return [Slot(i, gpus[i % len(gpus)] if gpus else None, threads) for i in range(jobs)]


def thread_env(threads: int) -> dict[str, str]:
    """Environment that limits a job's intra-op threads (torch reads OMP_NUM_THREADS at start-up)."""
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}


def make_executor(settings: GridSettings, folder: Path):
    """A submitit executor for ``settings.executor``; jobs write their submitit files under ``folder``."""
    import submitit

    if settings.executor == "debug":
        return submitit.DebugExecutor(folder=folder)
    if settings.executor == "local":
        executor = submitit.LocalExecutor(folder=folder)
        # a week: the local controller's default time limit (2 minutes) is for tests, not training runs
        executor.update_parameters(timeout_min=7 * 24 * 60)
        return executor
    from pipeline.grid.slurm import make_slurm_executor

    return make_slurm_executor(settings, folder)
