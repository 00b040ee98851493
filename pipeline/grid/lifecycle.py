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
from dataclasses import replace
from pathlib import Path

from core.fsutil import atomic_write_text
from pipeline.grid.dvcrepo import dice_of, lost_epochs_of
from pipeline.grid.executors import Slot, cpu_count, thread_env
from pipeline.grid.jobs import ChainJob, ChainRunner, StageCommand, read_record, terminate_tree
from pipeline.grid.monitor import fmt_s, tail, user_error_line
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


class JobLifecycle:
    """The coordinator's job side (a part of :class:`pipeline.grid.coordinator.Grid`): submits, collects,
    cancels and records the jobs in flight (``self.running``)."""

    def job_for(self, chain: Chain, slot: Slot | None) -> ChainJob:
        env = thread_env(slot.threads) if slot is not None else {}
        if self.settings.executor == "slurm":
            env = thread_env(self.settings.threads_per_job or self.settings.slurm.cpus_per_job)
        commands = tuple(
            StageCommand(
                name=s.addressing,
                cmds=tuple(s.cmd if isinstance(s.cmd, list) else s.cmd.splitlines()),
                wdir=str(s.wdir),
                log=str(log),
            )
            for s, log in zip(chain.stages, chain.logs, strict=True)
        )
        return ChainJob(
            stages=commands,
            root=str(self.root),
            env=env,
            path_prefix=str(Path(sys.executable).parent),
            heartbeat=str(self.grid_dir / "heartbeat"),
            run_id=self.run_id,
            orphan_timeout_s=self.settings.orphan_timeout_s,
            record=str(chain.record),
            # a stopped training ends its epoch and saves: on SLURM until the time limit is near (SIGUSR2) or SLURM
            # kills it (KillWait after SIGTERM); a cancelled local job, a few seconds
            stop_grace_s=max(10, self.settings.slurm.signal_delay_s - 30) if self.settings.executor == "slurm" else 5,
        )

    def submit(self, executor, chain: Chain, slot: Slot | None) -> None:
        if self.settings.executor == "local" and slot is not None:
            gpus = (slot.gpu,) if slot.gpu is not None else ()
            executor.update_parameters(visible_gpus=gpus, gpus_per_node=len(gpus))
        chain.slot, chain.submitted, chain.status = slot, time.time(), "running"
        for s in chain.stages:
            self.state[s] = "running"
        if slot is not None and self.is_exclusive(chain) and not self.settings.threads_per_job:
            # nothing runs beside it: every core, as under `dvc repro` (its latency is then comparable)
            slot = replace(slot, threads=cpu_count())
        job = self.job_for(chain, slot)
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

    def finish(self, chain: Chain) -> None:
        """Collect a finished job: commit what succeeded, mark the rest failed or blocked."""
        job = chain.job
        chain.requeues = max(0, len(read_record(chain.record)["attempts"]) - 1)
        ended_outside = None  # SLURM's state of a job that ended without a result
        if self.settings.executor == "slurm" and not job.paths.result_pickle.exists() and job.state != "COMPLETED":
            ended_outside = job.get_info(mode="cache").get("SlurmState") or job.state
            chain.crash = f"SLURM ended the job ({ended_outside}) without a result; its output:\n"
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
            chain.where = ", ".join(x for x in (f"{res.host} {device}", threads) if x)
        ok = [s for s, r in zip(chain.stages, res.stages, strict=True) if r.returncode == 0] if res else []
        errors = self.commit([s.addressing for s in ok]) if ok else {}
        for stage in ok:
            self.state[stage] = FAILED if stage.addressing in errors else DONE
        failed_here = False
        for i, stage in enumerate(chain.stages):
            if self.state[stage] == DONE:
                continue
            rc = res.stages[i].returncode if res else None
            if stage.addressing in errors or (rc is not None and rc != 0) or (not failed_here and rc is None):
                stopped = self.interrupted or (ended_outside or "").startswith("CANCELLED")
                stopped = stopped or (res is not None and (res.stopped or "").startswith("cancelled"))
                self.state[stage] = CANCELLED if stopped and stage.addressing not in errors else FAILED
                failed_here = True
            else:
                self.state[stage] = CANCELLED if self.interrupted else BLOCKED
        states = {self.state[s] for s in chain.stages}
        chain.status = FAILED if FAILED in states else CANCELLED if CANCELLED in states else DONE
        chain.errors = errors
        chain.lost_epochs = lost_epochs_of(chain.stages, chain.submitted or 0.0)
        if chain.status == DONE:
            dice = dice_of(chain.stages)
            extra = f"  Dice {dice:.2f} %" if dice is not None else ""
            self.say(f"done    {chain.label}  {fmt_s(chain.wall())}{extra}")
        else:
            first = next(s for s in chain.stages if self.state[s] in (FAILED, CANCELLED))
            why = errors.get(first.addressing) or (res.stopped if res and res.stopped else None)
            rc = res.stages[chain.stages.index(first)].returncode if res else None
            why = why or user_error_line(chain.logs[chain.stages.index(first)], rc)
            why = why or (f"exit status {rc}" if rc is not None else chain.crash or "did not run")
            self.say(f"{self.state[first].upper():7s} {first.addressing}: {why}")
        self.save_active()

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
        info = {"run_id": self.run_id, "coordinator": os.getpid(), "local_pids": local, "slurm_jobs": slurm}
        atomic_write_text(self.grid_dir / "active.json", json.dumps(info))

    def stop_leftovers(self) -> None:
        """Jobs of an earlier grid that was killed: they stop on their own when they see the new heartbeat
        (local jobs within seconds); wait a little, then end what is left."""
        path = self.grid_dir / "active.json"
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
            self.say(f"waiting for {len(left)} job(s) of an earlier grid to stop")
            deadline = time.monotonic() + 30
            while left and time.monotonic() < deadline:
                time.sleep(0.5)
                left = [e for e in left if alive(e)]
            for pid, _ in left:
                terminate_tree(pid)
        jobs = info.get("slurm_jobs", [])
        if jobs and shutil.which("scancel"):
            subprocess.run(["scancel", *jobs], check=False)
