"""A job's life as the coordinator sees it: submitted to a submitit executor (:mod:`pipeline.grid.executors`),
kept alive by the coordinator's heartbeat, waited for while SLURM requeues it, collected when done, stopped when
the grid is interrupted, and stopped by the next grid when this one was killed.

What the coordinator knows of a running job comes from submitit's public API (``job.done()``, ``job.state``,
``job.paths``, ``job.cancel()``) and from the job's own record (:func:`pipeline.grid.jobs.read_record`: its
attempts, its process id)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from core.fsutil import atomic_write_text
from engine.threads import THREADS_FILE_ENV
from pipeline.grid.dvcrepo import Plan, Workspace
from pipeline.grid.executors import Slot, cpu_count, thread_env
from pipeline.grid.jobs import ChainJob, ChainRunner, StageCommand, read_record, terminate_tree
from pipeline.grid.monitor import fmt_s, tail, user_error_line
from pipeline.grid.outputs import dice_of, lost_epochs_of
from pipeline.grid.scheduler import Chain
from pipeline.grid.states import BLOCKED, CANCELLED, DONE, FAILED


class Heartbeat(threading.Thread):
    """Writes ``<run id> <counter>`` to a file every second; jobs stop when it stops changing."""

    def __init__(self, path: Path, run_id: str, interval: float = 1.0) -> None:
        super().__init__(daemon=True, name="grid-heartbeat")
        self.path, self.run_id, self.interval = path, run_id, interval
        self.stopped = threading.Event()
        self.count = 0

    def beat(self) -> None:
        self.count += 1
        atomic_write_text(self.path, f"{self.run_id} {self.count}\n")

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.beat()
            except OSError:
                pass


@dataclass(frozen=True)
class GridPaths:
    """Where a grid run keeps its files."""

    root: Path  # the DVC project
    grid_dir: Path  # .dvc/tmp/grid: heartbeat, journal, the jobs in flight
    run_dir: Path  # this run's logs, job records, submitit files and thread budgets
    run_id: str


class JobLifecycle:
    """The jobs in flight (``running``): submits them, passes on their thread budgets, collects and records them
    (their stages' states in the plan, their successes in dvc.lock through the workspace), cancels them."""

    def __init__(
        self, settings, paths: GridPaths, plan: Plan, workspace: Workspace, say: Callable[[str], None]
    ) -> None:
        self.settings, self.paths, self.plan, self.workspace, self.say = settings, paths, plan, workspace, say
        self.running: list[Chain] = []

    def budget_file(self, chain: Chain) -> Path:
        """The file holding a local CPU job's thread budget (read by its training at each epoch)."""
        return self.paths.run_dir / "threads" / f"{chain.names[0].replace('/', '_')}.txt"

    def set_threads(self, chain: Chain, threads: int) -> None:
        """Give a running job a new thread budget (its training applies it at its next epoch)."""
        atomic_write_text(self.budget_file(chain), f"{threads}\n")
        chain.threads_log.append((time.time(), threads))

    def job_for(self, chain: Chain, slot: Slot | None, follow_budget: bool) -> ChainJob:
        env = thread_env(slot.threads) if slot is not None else {}
        if self.settings.executor == "slurm":
            env = thread_env(self.settings.threads_per_job or self.settings.slurm.cpus_per_job)
        if follow_budget and slot is not None:
            self.set_threads(chain, slot.threads)
            env[THREADS_FILE_ENV] = str(self.budget_file(chain))
        commands = tuple(
            StageCommand(name=s.name, cmds=s.cmds, wdir=s.wdir, log=str(log))
            for s, log in zip(chain.stages, chain.logs, strict=True)
        )
        return ChainJob(
            stages=commands,
            root=str(self.paths.root),
            env=env,
            path_prefix=str(Path(sys.executable).parent),
            heartbeat=str(self.paths.grid_dir / "heartbeat"),
            run_id=self.paths.run_id,
            orphan_timeout_s=self.settings.orphan_timeout_s,
            record=str(chain.record),
            # a stopped training ends its epoch and saves: on SLURM until the time limit is near (SIGUSR2) or SLURM
            # kills it (KillWait after SIGTERM); a cancelled local job, a few seconds
            stop_grace_s=max(10, self.settings.slurm.signal_delay_s - 30) if self.settings.executor == "slurm" else 5,
        )

    def submit(self, executor, chain: Chain, slot: Slot | None, exclusive: bool = False, follow_budget: bool = False):
        """Start a job in ``slot`` (an exclusive one with every core); with ``follow_budget`` its training follows
        the thread budget :meth:`set_threads` gives it."""
        if self.settings.executor == "local" and slot is not None:
            gpus = (slot.gpu,) if slot.gpu is not None else ()
            executor.update_parameters(visible_gpus=gpus, gpus_per_node=len(gpus))
        chain.submitted, chain.status = time.time(), "running"
        for s in chain.stages:
            self.plan.state[s] = "running"
        if slot is not None and exclusive and not self.settings.threads_per_job:
            # nothing runs beside it: every core, as under `dvc repro` (its latency is then comparable)
            slot = replace(slot, threads=cpu_count())
        job = self.job_for(chain, slot, follow_budget and not exclusive)
        if self.settings.executor == "local" and threading.current_thread() is threading.main_thread():
            # the job processes ignore SIGINT, so a Ctrl-C in the terminal reaches the coordinator and the
            # stage commands (which restore it) but not submitit's controllers; the coordinator then
            # cancels the jobs with SIGTERM
            old = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                chain.job = executor.submit(ChainRunner(job))
            finally:
                signal.signal(signal.SIGINT, old)
        else:
            chain.job = executor.submit(ChainRunner(job))
        self.running.append(chain)
        where = slot.describe() if slot is not None else f"slurm job {chain.job.job_id}"
        chain.where = where
        self.say(f"run     {chain.label}  ({where})")
        self.save_active()

    def collect(self, chain: Chain) -> None:
        """The result of a finished job (or why it has none) into ``chain.result`` / ``chain.crash``."""
        job = chain.job
        chain.requeues = max(0, len(read_record(chain.record)["attempts"]) - 1)
        if self.settings.executor == "slurm" and not job.paths.result_pickle.exists() and job.state != "COMPLETED":
            chain.ended_outside = job.get_info(mode="cache").get("SlurmState") or job.state
            chain.crash = f"SLURM ended the job ({chain.ended_outside}) without a result; its output:\n"
            chain.crash += tail(job.paths.stdout)
        elif self.settings.executor == "local" and not job.paths.result_pickle.exists():
            # the job process died without a result (killed): submitit would wait for one
            chain.crash = f"the job process ended without a result; its stderr:\n{tail(job.paths.stderr)}"
        else:
            try:
                chain.result = job.result()
            except Exception as err:  # noqa: BLE001 - the job process died or raised: report, don't crash
                chain.crash = str(err)[-3000:]
        res = chain.result
        if res is not None:
            device = f"gpu {res.cuda_visible_devices}" if res.cuda_visible_devices else "cpu"
            threads = f"{res.threads} thread{'s' * (res.threads != '1')}" if res.threads else None
            if threads and len({t for _, t in chain.threads_log}) > 1:
                threads = "->".join(str(t) for _, t in chain.threads_log) + " threads"
            chain.where = ", ".join(x for x in (f"{res.host} {device}", threads) if x)

    def finish(self, chain: Chain, interrupted: bool) -> None:
        """Collect a finished job: commit what succeeded, mark the rest failed or blocked."""
        self.collect(chain)
        state, res = self.plan.state, chain.result
        ok = [s for s, r in zip(chain.stages, res.stages, strict=True) if r.returncode == 0] if res else []
        errors = self.workspace.commit([s.name for s in ok]) if ok else {}
        for stage in ok:
            state[stage] = FAILED if stage.name in errors else DONE
        failed_here = False
        for i, stage in enumerate(chain.stages):
            if state[stage] == DONE:
                continue
            rc = res.stages[i].returncode if res else None
            if stage.name in errors or (rc is not None and rc != 0) or (not failed_here and rc is None):
                stopped = interrupted or (chain.ended_outside or "").startswith("CANCELLED")
                stopped = stopped or (res is not None and (res.stopped or "").startswith("cancelled"))
                state[stage] = CANCELLED if stopped and stage.name not in errors else FAILED
                failed_here = True
            else:
                state[stage] = CANCELLED if interrupted else BLOCKED
        states = {state[s] for s in chain.stages}
        chain.status = FAILED if FAILED in states else CANCELLED if CANCELLED in states else DONE
        chain.errors = errors
        chain.lost_epochs = lost_epochs_of(chain.stages, chain.submitted or 0.0)
        self.running.remove(chain)
        self.report(chain)
        self.save_active()

    def report(self, chain: Chain) -> None:
        """The job's one line: done with its time and Dice, or its first failed stage and why."""
        if chain.status == DONE:
            dice = dice_of(chain.stages)
            extra = f"  Dice {dice:.2f} %" if dice is not None else ""
            self.say(f"done    {chain.label}  {fmt_s(chain.wall())}{extra}")
            return
        res = chain.result
        first = next(s for s in chain.stages if self.plan.state[s] in (FAILED, CANCELLED))
        i = chain.stages.index(first)
        why = chain.errors.get(first.name) or (res.stopped if res and res.stopped else None)
        rc = res.stages[i].returncode if res else None
        why = why or user_error_line(chain.logs[i], rc)
        why = why or (f"exit status {rc}" if rc is not None else chain.crash or "did not run")
        self.say(f"{self.plan.state[first].upper():7s} {first.name}: {why}")

    def job_process(self, chain: Chain) -> int | None:
        """The pid of a local job's process, from its record (None before it starts or once it has ended)."""
        import psutil

        attempts = read_record(chain.record)["attempts"] if chain.record else []
        if self.settings.executor != "local" or not attempts:
            return None
        pid, started = attempts[-1].get("pid"), attempts[-1].get("pid_started")
        try:
            return pid if psutil.Process(pid).create_time() == started else None
        except (psutil.NoSuchProcess, TypeError, ValueError):
            return None

    def cancel(self, chain: Chain) -> None:
        """Stop a running job: SIGTERM to a local job's process (once it has started: retried until then),
        scancel on SLURM."""
        try:
            if self.settings.executor == "slurm":
                chain.job.cancel(check=False)
                chain.cancel_sent = True
            elif (pid := self.job_process(chain)) is not None:
                os.kill(pid, signal.SIGTERM)
                chain.cancel_sent = True
        except Exception:  # noqa: BLE001 - best effort: without a heartbeat the job stops by itself anyway
            pass

    def save_active(self) -> None:
        """The jobs in flight, so that a later grid can stop them if this one is killed."""
        import psutil

        local, slurm = [], []
        for chain in self.running:
            if self.settings.executor == "local" and (pid := self.job_process(chain)) is not None:
                try:
                    local.append([pid, psutil.Process(pid).create_time()])
                except psutil.NoSuchProcess:
                    pass
            elif self.settings.executor == "slurm" and chain.job is not None:
                slurm.append(str(chain.job.job_id))
        info = {"run_id": self.paths.run_id, "coordinator": os.getpid(), "local_pids": local, "slurm_jobs": slurm}
        atomic_write_text(self.paths.grid_dir / "active.json", json.dumps(info))


def stop_leftovers(grid_dir: Path, say: Callable[[str], None]) -> None:
    """Jobs of an earlier grid that was killed: they stop on their own when they see the new heartbeat
    (local jobs within seconds); wait a little, then end what is left."""
    path = grid_dir / "active.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    import psutil

    def alive(entry) -> bool:  # the same process, not a later one that reuses the pid
        try:
            return psutil.Process(entry[0]).create_time() == entry[1]
        except (psutil.NoSuchProcess, TypeError, IndexError):
            return False

    left = [e for e in info.get("local_pids", []) if alive(e)]
    if left:
        say(f"waiting for {len(left)} job(s) of an earlier grid to stop")
        deadline = time.monotonic() + 30
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = [e for e in left if alive(e)]
        for pid, _ in left:
            terminate_tree(pid)
    jobs = info.get("slurm_jobs", [])
    if jobs and shutil.which("scancel"):
        subprocess.run(["scancel", *jobs], check=False)
