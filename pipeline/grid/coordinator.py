"""The coordinating process of the grid (:class:`Grid`: decides, submits, polls, commits, reports), its dry run
and its command line (``python -m pipeline.grid``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from core.errors import UserError
from core.fsutil import atomic_write_text
from engine.params import GridSettings
from pipeline.grid.dvcrepo import DvcAccess, Journal
from pipeline.grid.executors import Slot, load_grid_settings, make_executor, plan_slots
from pipeline.grid.jobs import terminate_tree
from pipeline.grid.lifecycle import Heartbeat, JobLifecycle
from pipeline.grid.monitor import Monitoring, Outcome
from pipeline.grid.scheduler import Chain, Scheduling, describe_local, past_job_seconds, shares_cores
from pipeline.grid.states import BLOCKED, CANCELLED, GRID_DIR, KEEP_RUNS, SLURM_DEFAULT_JOBS, GridError


class Grid(DvcAccess, Scheduling, JobLifecycle, Monitoring):
    """The coordinating process: decides, submits, polls, commits, reports. Each concept's methods live in its
    own module (``dvcrepo``, ``scheduler``, ``lifecycle``, ``monitor``); this class holds the state they share
    and the main loop."""

    def __init__(
        self,
        root: str | os.PathLike,
        settings: GridSettings,
        targets: list[str] | None = None,
        out: TextIO | None = None,
        poll_s: float = 0.5,
    ) -> None:
        from dvc.exceptions import NotDvcRepoError
        from dvc.repo import Repo

        logging.getLogger("dvc").setLevel(logging.WARNING)  # "Updating lock file" x 2 per job
        self.root = Path(root).resolve()
        try:
            self.repo = Repo(str(self.root))
        except NotDvcRepoError as err:
            raise GridError(f"{self.root}: not a DVC project ({err})") from err
        self.settings = settings
        self.targets = list(targets or [])
        self.out = out or sys.stdout
        self.poll_s = poll_s
        self.grid_dir = self.root / GRID_DIR
        self.run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        self.run_dir = self.grid_dir / "runs" / self.run_id
        self.journal = Journal(self.root, self.grid_dir)
        self.past_seconds = past_job_seconds(self.grid_dir)
        self.estimates: dict[str, tuple] = {}  # by job head: its length estimate, for the queue's order
        self.interrupted = False
        self.t0 = time.time()

    def check_sources(self) -> None:
        """One line for dependencies that nothing can make, before any output is removed."""
        missing = self.missing_sources()
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise GridError(
                f"missing, and no stage makes it: {'; '.join(missing[:3])}{more} (download the dataset, see README "
                "Datasets, or fix its datasets.<name>.raw folder in params.yaml)"
            )

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        if not self.interrupted:
            print(f"\n{signal.Signals(signum).name}: stopping the jobs...", file=self.out, flush=True)
        self.interrupted = True

    @contextmanager
    def grid_lock(self):
        import fcntl

        self.grid_dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.grid_dir / "lock", "a+")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise GridError(f"another grid is running in {self.root} (lock: {self.grid_dir / 'lock'})") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()

    def prune_runs(self) -> None:
        runs = sorted((self.grid_dir / "runs").glob("*"))
        for old in runs[: max(0, len(runs) - KEEP_RUNS)]:
            shutil.rmtree(old, ignore_errors=True)

    @contextmanager
    def in_root(self):
        """DVC names stages relative to the working directory (as its CLI does): work from the root."""
        cwd = os.getcwd()
        os.chdir(self.root)
        try:
            yield
        finally:
            os.chdir(cwd)

    def run(self) -> Outcome:
        with self.in_root():
            return self._run()

    def _run(self) -> Outcome:
        self.running: list[Chain] = []
        self.queue: deque[Chain] = deque()
        self.dirty = True  # something changed since the last decide()
        outcome = Outcome()
        with self.grid_lock():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.prune_runs()
            heartbeat = Heartbeat(self.grid_dir / "heartbeat", self.run_id)
            heartbeat.beat()  # from now on, jobs of an earlier grid stop
            heartbeat.start()
            handlers = {}
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    handlers[sig] = signal.signal(sig, self._on_signal)
            try:
                self.stop_leftovers()
                self.recover()
                self.load_plan()
                self.check_sources()
                self._loop(outcome)
            finally:
                heartbeat.stopped.set()
                for sig, old in handlers.items():
                    signal.signal(sig, old)
                (self.grid_dir / "active.json").unlink(missing_ok=True)
                self.repo.close()
        outcome.states = {s.addressing: st for s, st in self.state.items()}
        for name in self.excluded:
            outcome.states[name] = "excluded"
        outcome.interrupted = self.interrupted
        outcome.seconds = time.time() - self.t0
        self.summary(outcome)
        atomic_write_text(self.run_dir / "summary.json", json.dumps(outcome.to_json(), indent=2))
        return outcome

    def _loop(self, outcome: Outcome) -> None:
        settings = self.settings
        if settings.executor == "local":
            slots: list[Slot | None] = list(plan_slots(settings))
        elif settings.executor == "slurm":
            slots = [None] * (settings.jobs or SLURM_DEFAULT_JOBS)
        else:
            slots = [None]
        free = deque(slots)
        desc = describe_local(settings, slots) if settings.executor == "local" else f"{len(slots)} job(s) at once"  # type: ignore[arg-type]
        share_cores = shares_cores(settings, slots)
        self.say(
            f"grid {self.run_id}: {len(self.steps)} stages to check"
            + (f" ({len(self.excluded)} excluded: left to `dvc repro`)" if self.excluded else "")
            + f"; executor {settings.executor}: {desc}"
        )
        self.say(f"logs: {self.run_dir.relative_to(self.root) / 'logs'}")
        executor = make_executor(settings, self.run_dir / "submitit")
        if settings.executor == "slurm":
            from pipeline.grid.slurm import JobStates, accounting_problem

            problem = accounting_problem()
            JobStates.use_squeue = problem is not None
            if problem:
                self.say(f"no SLURM accounting ({problem}): job states come from squeue and the jobs' result files")
        last_progress = time.monotonic()
        cancelled = False
        while True:
            if not self.interrupted and self.dirty:
                self.dirty = False
                self.queue = deque(sorted([*self.queue, *self.decide()], key=self.priority))
            while self.queue and free and not self.interrupted:
                chain = self.next_chain()
                if chain is None:  # an exclusive stage waits for the others, or the others wait for it
                    break
                outcome.chains.append(chain)
                if self.prepare_outputs(chain):
                    self.dirty = True
                    continue
                slot = free.popleft()
                if share_cores and not self.is_exclusive(chain):
                    # the free cores split evenly among this job and the ones queued behind it, so that
                    # four runs on 16 cores get 4 threads each rather than one each and 12 idle cores
                    waiting = sum(not self.is_exclusive(c) for c in self.queue)  # an exclusive one runs alone later
                    threads = max(1, (len(free) + 1) // (waiting + 1))
                    chain.extra_slots = [free.popleft() for _ in range(threads - 1)]
                    slot = replace(slot, threads=threads)
                self.submit(executor, chain, slot)
            for chain in self.running:  # when each stage of a job started (for its progress line)
                for i, log in enumerate(chain.logs):
                    if i not in chain.seen and log.exists():
                        chain.seen[i] = time.time()
                        if i == 0:
                            self.save_active()  # the job has started: its pid is in its record
            for chain in [c for c in self.running if c.job.done()]:
                self.running.remove(chain)
                free.append(chain.slot)
                free.extend(chain.extra_slots)
                self.finish(chain)
                self.dirty = True
            if self.interrupted and cancelled:
                for chain in self.running:  # a local job that had not started when the others were stopped
                    if not chain.cancel_sent:
                        self.cancel(chain)
            if self.interrupted and not cancelled:
                cancelled = True
                for chain in self.queue:
                    chain.status = CANCELLED
                    for s in chain.stages:
                        self.state[s] = CANCELLED
                self.queue.clear()
                for chain in self.running:
                    self.cancel(chain)
                deadline = time.monotonic() + 30
                if settings.executor == "slurm":  # scancel'ed; SLURM may take minutes to report them done
                    for chain in self.running:
                        chain.status = CANCELLED
                        for s in chain.stages:
                            self.state[s] = CANCELLED
                    self.running.clear()
            if not self.running and not self.queue:
                if self.interrupted or not self.decidable():
                    break
                self.dirty = True
            if cancelled and time.monotonic() > deadline:
                for chain in self.running:
                    pid = self.job_process(chain)
                    if pid is not None:
                        terminate_tree(pid)
                deadline = float("inf")
            if time.monotonic() - last_progress > settings.progress_s and self.running:
                self.progress()
                last_progress = time.monotonic()
            time.sleep(self.poll_s)
        for stage, st in self.state.items():
            if st == "undecided":
                self.state[stage] = CANCELLED if self.interrupted else BLOCKED


# ------------------------------------------------------------------------------------------ dry run


def dry_run(grid: Grid, out: TextIO) -> None:
    """Print what the grid would run now (without running or changing anything)."""
    with grid.in_root():
        _dry_run(grid, out)


def _dry_run(grid: Grid, out: TextIO) -> None:
    grid.load_plan()
    grid.check_sources()
    with grid.dvc_locked():
        changed = [s for s in grid.steps if grid.changed(s)]
    stale = set(changed)
    for s in grid.steps:  # plan order: upstream first
        if any(u in stale for u in grid.upstream[s]):
            stale.add(s)
    print(f"{len(grid.steps)} stages to check; {len(changed)} out of date now:", file=out)
    for s in grid.steps:
        if s in changed:
            print(f"  {s.addressing}", file=out)
    later = [s.addressing for s in grid.steps if s in stale and s not in changed]
    if later:
        print(f"{len(later)} more checked once what they need has run (e.g. {', '.join(later[:3])})", file=out)
    if grid.excluded:
        print(f"excluded (left to `dvc repro`): {', '.join(grid.excluded)}", file=out)
    settings = grid.settings
    if settings.executor == "local":
        slots = plan_slots(settings)
        print(f"executor local, {describe_local(settings, slots)}", file=out)
    elif settings.executor == "slurm":
        from pipeline.grid.slurm import sbatch_script

        script = sbatch_script(settings, grid.run_dir / "submitit")
        print(f"executor slurm, {settings.jobs or SLURM_DEFAULT_JOBS} jobs at once; each job's sbatch file:", file=out)
        print(script, file=out)
    else:
        print("executor debug: one job at a time, in this process", file=out)


# ------------------------------------------------------------------------------------------- CLI


def parse_gpus(text: str | None) -> Any:
    if text is None or text in ("auto", "none"):
        return text
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--gpus {text!r}: expected auto, none or indices such as 0,1,2") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.grid",
        description="Run the out-of-date stages of dvc.yaml in parallel and record them in dvc.lock.",
    )
    parser.add_argument("targets", nargs="*", help="stages (names, groups such as 'train', or globs); default all")
    parser.add_argument("-j", "--jobs", type=int, help="jobs at once (grid.jobs)")
    parser.add_argument("--executor", choices=["local", "slurm", "debug"], help="where jobs run (grid.executor)")
    parser.add_argument("--gpus", help="auto, none, or GPU indices such as 0,1,2,3 (grid.gpus)")
    parser.add_argument("--threads-per-job", type=int, help="OMP_NUM_THREADS of each job (grid.threads_per_job)")
    parser.add_argument("--exclude", action="append", help="stage name or glob left to `dvc repro` (repeatable)")
    parser.add_argument("--progress-s", type=float, help="seconds between progress reports (grid.progress_s)")
    parser.add_argument("--params", default="params.yaml", help="the file with the grid: section")
    parser.add_argument("--dry-run", action="store_true", help="show what would run and the job script, run nothing")
    parser.add_argument("--summary-json", help="also write the summary (stages, runs, times, Dice) to this file")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")

    overrides = {
        "jobs": args.jobs,
        "executor": args.executor,
        "gpus": parse_gpus(args.gpus),
        "threads_per_job": args.threads_per_job,
        "exclude": args.exclude,
        "progress_s": args.progress_s,
    }
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        root = Path(Repo.find_root())
    except NotDvcRepoError as err:
        raise GridError(f"{Path.cwd()}: not inside a DVC project") from err
    settings = load_grid_settings(root / args.params, overrides)
    grid = Grid(root, settings, args.targets)
    if args.dry_run:
        dry_run(grid, sys.stdout)
        return 0
    outcome = grid.run()
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(outcome.to_json(), indent=2), encoding="utf-8")
    return outcome.exit_code
