"""The grid on SLURM: submitit's SLURM executor with the grid's sbatch options, a source of job states that works
without SLURM accounting, and the sbatch file a job gets (for ``--dry-run``).

Job states: submitit asks ``sacct``, which fails where SLURM keeps no accounting (no slurmdbd). The grid checks
once at its start (:func:`accounting_problem`); without accounting it says so in one line and its jobs' states
come from ``squeue`` instead (a job squeue no longer lists has ended: its result file, or its absence, says how).
A requeued or preempted job counts as waiting, whatever the source, except a job that stays PREEMPTED for
:data:`PREEMPTED_GRACE_S`: where SLURM's PreemptMode is CANCEL that state is final (a requeued job leaves it in
seconds), and submitit would wait for it forever; it then counts as ended without a result (the stage fails,
and a later grid resumes it from its last checkpoint).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from submitit import SlurmExecutor, SlurmJob
from submitit.slurm.slurm import SlurmInfoWatcher

from engine.params import GridSettings
from pipeline.grid.states import GridError

# States in which SLURM may still run the job (again), beyond those submitit already waits for
WAITING = {"REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SPECIAL_EXIT", "SUSPENDED", "STOPPED"}
ACTIVE = {"CONFIGURING", "RESIZING", "SIGNALING", "STAGE_OUT"}
GONE = "NOT_LISTED"  # squeue no longer lists the job (ended more than MinJobAge ago)
PREEMPTED_GRACE_S = 300.0
PREEMPTED_FOR_GOOD = "PREEMPTED_NOT_REQUEUED"  # not a SLURM state: one submitit counts as ended


class JobStates(SlurmInfoWatcher):
    """submitit's watcher of SLURM job states (its hook for the command it runs), on ``squeue`` when
    ``use_squeue`` (no accounting)."""

    use_squeue = False
    asked: tuple[str, ...] = ()  # the jobs of the last squeue call
    clock = staticmethod(time.monotonic)

    def __init__(self, delay_s: int = 60) -> None:
        super().__init__(delay_s=delay_s)
        self.preempted_since: dict[str, float] = {}  # job id -> when it was first seen PREEMPTED

    def _make_command(self) -> list[str] | None:
        command = super()._make_command()  # sacct ... -j ID -j ID, or None when no job is unfinished
        if command is None or not self.use_squeue:
            return command
        self.asked = tuple(command[i + 1] for i, arg in enumerate(command[:-1]) if arg == "-j")
        # this user's jobs, not --jobs: squeue fails when the only job named has been forgotten
        return ["squeue", "--noheader", "--states=all", "--format=%i|%T|%N", "--me"]

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        if not isinstance(string, str):
            string = string.decode()
        if self.use_squeue:
            string = "JobID|State|NodeList\n" + string
        info = super().read_info(string)
        if self.use_squeue:
            for job_id in self.asked:
                info.setdefault(job_id, {"JobID": job_id, "State": GONE, "NodeList": ""})
        for entry in info.values():
            state = entry.get("State", "").split(" ")[0]  # sacct: "CANCELLED by 0"
            entry["SlurmState"] = state
            entry["State"] = "PENDING" if state in WAITING else "RUNNING" if state in ACTIVE else entry["State"]
            job_id = entry.get("JobID", "")
            if state != "PREEMPTED":
                self.preempted_since.pop(job_id, None)
            elif self.clock() - self.preempted_since.setdefault(job_id, self.clock()) >= PREEMPTED_GRACE_S:
                entry["State"] = PREEMPTED_FOR_GOOD
        return info


class GridSlurmJob(SlurmJob):
    watcher = JobStates(delay_s=60)


class GridSlurmExecutor(SlurmExecutor):
    job_class = GridSlurmJob


def accounting_problem() -> str | None:
    """Why ``sacct`` cannot tell job states here (e.g. ``Slurm accounting storage is disabled``), or None."""
    try:
        done = subprocess.run(
            ["sacct", "--noheader", "--allocations", "--jobs=1", "--format=JobID"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as err:
        return f"sacct: {err}"
    if done.returncode:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return f"sacct: {lines[0] if lines else f'exit status {done.returncode}'}"
    return None


def slurm_parameters(settings: GridSettings) -> dict[str, Any]:
    """submitit's sbatch parameters for one job of the grid (``grid.slurm``)."""
    s = settings.slurm
    params: dict[str, Any] = {
        "job_name": "dyglbench-grid",
        "time": s.time_min,
        "nodes": 1,
        "ntasks_per_node": 1,
        "cpus_per_task": s.cpus_per_job,
        "setup": list(s.setup),
        "stderr_to_stdout": True,
        "signal_delay_s": s.signal_delay_s,  # SIGUSR2 this long before the time limit: save, be requeued
        "additional_parameters": {"requeue": True},  # preemption and the time limit requeue the job
    }
    if s.gpus_per_job:
        params["gpus_per_node"] = s.gpus_per_job
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(s, key) is not None:
            params[key] = getattr(s, key)
    if s.mem_gb is not None:
        params["mem"] = f"{int(s.mem_gb * 1024)}MB"
    params["additional_parameters"].update({k.replace("-", "_"): v for k, v in s.sbatch.items()})
    return params


def make_slurm_executor(settings: GridSettings, folder: Path) -> GridSlurmExecutor:
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise GridError("executor slurm: sbatch or srun not found (not on a SLURM cluster's login node?)")
    executor = GridSlurmExecutor(folder=folder)
    executor.update_parameters(**slurm_parameters(settings))
    return executor


def sbatch_script(settings: GridSettings, folder: Path) -> str:
    """The sbatch file submitit writes for each job (for ``--dry-run``), also where SLURM is not installed:
    submitted through a stand-in ``sbatch`` that only answers with a job id, read from ``job.paths``."""
    with tempfile.TemporaryDirectory() as tmp:
        bindir, scratch = Path(tmp) / "bin", Path(tmp) / "submitit"
        bindir.mkdir()
        for name, body in (("sbatch", "echo 'Submitted batch job 0'"), ("srun", "exit 0")):
            (bindir / name).write_text(f"#!/bin/sh\n{body}\n")
            (bindir / name).chmod(0o755)
        path = os.environ.get("PATH", "")
        os.environ["PATH"] = f"{bindir}{os.pathsep}{path}"
        try:
            executor = SlurmExecutor(folder=scratch)
            executor.update_parameters(**slurm_parameters(settings))
            text = executor.submit(print).paths.submission_file.read_text(encoding="utf-8")
        finally:
            os.environ["PATH"] = path
    return text.replace(str(scratch), str(folder))
