"""The coordinating process of the grid (:class:`Grid`: decides, submits, polls, commits, reports), its dry run
and its command line (``python -m pipeline.grid``).

:class:`Grid` composes the parts, each owning its state: the :class:`~pipeline.grid.dvcrepo.Workspace` (the DVC
project through :mod:`pipeline.grid.dvc_adapter`, the journal of commits), the
:class:`~pipeline.grid.scheduler.Scheduler` (queue, free slots, thread budgets), the
:class:`~pipeline.grid.lifecycle.JobLifecycle` (the jobs in flight) and the :class:`~pipeline.grid.monitor.Monitor`
(what is printed). The :class:`~pipeline.grid.dvcrepo.Plan` (the stages and their states) is made once per run and
handed to each part that reads or settles stages."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from core.errors import UserError
from core.fsutil import atomic_write_text
from engine.params import GridSettings
from pipeline.grid.dvc_adapter import NotDvcProject, find_root
from pipeline.grid.dvcrepo import Plan, Workspace
from pipeline.grid.estimate import StepTimer
from pipeline.grid.executors import Slot, load_grid_settings, make_executor, plan_slots
from pipeline.grid.jobs import terminate_tree
from pipeline.grid.lifecycle import GridPaths, Heartbeat, JobLifecycle, stop_leftovers
from pipeline.grid.monitor import Monitor, Outcome
from pipeline.grid.scheduler import Scheduler, describe_local, past_job_seconds
from pipeline.grid.states import BLOCKED, CANCELLED, GRID_DIR, KEEP_RUNS, SLURM_DEFAULT_JOBS, GridError


@dataclass
class _LoopState:
    """What the main loop carries from one poll to the next."""

    outcome: Outcome
    last_progress: float
    dirty: bool = True  # something changed since the last decide()
    cancelled: bool = False
    deadline: float = float("inf")  # when jobs still running after a cancel are ended


class Grid:
    """The coordinating process: decides, submits, polls, commits, reports (the parts are composed, see the
    module's docstring)."""

    def __init__(
        self,
        root: str | os.PathLike,
        settings: GridSettings,
        targets: list[str] | None = None,
        out: TextIO | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self.root = Path(root).resolve()
        self.settings = settings
        self.targets = list(targets or [])
        self.poll_s = poll_s
        self.t0 = time.time()
        self.monitor = Monitor(out or sys.stdout, self.t0)
        self.say = self.monitor.say
        run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        grid_dir = self.root / GRID_DIR
        self.paths = GridPaths(self.root, grid_dir, grid_dir / "runs" / run_id, run_id)
        self.workspace = Workspace(self.root, grid_dir, self.say)
        self.interrupted = False

    @property
    def run_dir(self) -> Path:
        return self.paths.run_dir

    def load_plan(self) -> Plan:
        """The plan of this run; a GridError when a dependency is missing that no stage makes (before any output
        is removed)."""
        plan = self.workspace.load_plan(self.targets, self.settings.exclude)
        missing = self.workspace.missing_sources(plan)
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise GridError(
                f"missing, and no stage makes it: {'; '.join(missing[:3])}{more} (download the dataset, see "
                "docs/how-to/fetch-and-check-data.md, or fix its datasets.<name>.raw folder in params.yaml)"
            )
        return plan

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        if not self.interrupted:
            print(f"\n{signal.Signals(signum).name}: stopping the jobs...", file=self.monitor.out, flush=True)
        self.interrupted = True

    @contextmanager
    def grid_lock(self):
        import fcntl

        grid_dir = self.paths.grid_dir
        grid_dir.mkdir(parents=True, exist_ok=True)
        fh = open(grid_dir / "lock", "a+")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise GridError(f"another grid is running in {self.root} (lock: {grid_dir / 'lock'})") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()

    def prune_runs(self) -> None:
        runs = sorted((self.paths.grid_dir / "runs").glob("*"))
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

    @contextmanager
    def _signals(self):
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, self._on_signal)
        try:
            yield
        finally:
            for sig, old in handlers.items():
                signal.signal(sig, old)

    def run(self) -> Outcome:
        """Run the out-of-date stages; the outcome is also printed (summary) and written as summary.json."""
        with self.in_root():
            return self._run()

    def _run(self) -> Outcome:
        outcome = Outcome()
        plan = None
        with self.grid_lock():
            self.paths.run_dir.mkdir(parents=True, exist_ok=True)
            self.prune_runs()
            heartbeat = Heartbeat(self.paths.grid_dir / "heartbeat", self.paths.run_id)
            heartbeat.beat()  # from now on, jobs of an earlier grid stop
            heartbeat.start()
            try:
                with self._signals():
                    stop_leftovers(self.paths.grid_dir, self.say)
                    self.workspace.recover()
                    plan = self.load_plan()
                    self._loop(plan, outcome)
            finally:
                heartbeat.stopped.set()
                (self.paths.grid_dir / "active.json").unlink(missing_ok=True)
                self.workspace.close()
        outcome.states = {s.name: st for s, st in plan.state.items()}
        for name in plan.excluded:
            outcome.states[name] = "excluded"
        outcome.interrupted = self.interrupted
        outcome.seconds = time.time() - self.t0
        self.monitor.summary(outcome, plan)
        atomic_write_text(self.paths.run_dir / "summary.json", json.dumps(outcome.to_json(), indent=2))
        return outcome

    def _slots(self) -> list[Slot | None]:
        settings = self.settings
        if settings.executor == "local":
            return list(plan_slots(settings))
        return [None] * ((settings.jobs or SLURM_DEFAULT_JOBS) if settings.executor == "slurm" else 1)

    def _parts(self, plan: Plan) -> tuple[Scheduler, JobLifecycle]:
        slots = self._slots()
        gpu = slots[0].gpu if slots and slots[0] is not None else None
        timer = StepTimer(cores=len(slots), say=self.say, gpu=gpu) if self.settings.executor == "local" else None
        past = past_job_seconds(self.paths.grid_dir)
        scheduler = Scheduler(
            plan, self.workspace, self.settings, slots, self.paths.run_dir, self.say, estimator=timer, past_seconds=past
        )
        lifecycle = JobLifecycle(self.settings, self.paths, plan, self.workspace, self.say)
        settings = self.settings
        desc = describe_local(settings, slots) if settings.executor == "local" else f"{len(slots)} job(s) at once"  # type: ignore[arg-type]
        self.say(
            f"grid {self.paths.run_id}: {len(plan.steps)} stages to check"
            + (f" ({len(plan.excluded)} excluded: left to `dvc repro`)" if plan.excluded else "")
            + f"; executor {settings.executor}: {desc}"
        )
        self.say(f"logs: {self.paths.run_dir.relative_to(self.root) / 'logs'}")
        return scheduler, lifecycle

    def _executor(self):
        executor = make_executor(self.settings, self.paths.run_dir / "submitit")
        if self.settings.executor == "slurm":
            from pipeline.grid.slurm import JobStates, accounting_problem

            problem = accounting_problem()
            JobStates.use_squeue = problem is not None
            if problem:
                self.say(f"no SLURM accounting ({problem}): job states come from squeue and the jobs' result files")
        return executor

    def _loop(self, plan: Plan, outcome: Outcome) -> None:
        sched, jobs = self._parts(plan)
        executor = self._executor()
        st = _LoopState(outcome, last_progress=time.monotonic())
        while True:
            if not self.interrupted and st.dirty:
                st.dirty = False
                sched.enqueue(sched.decide())
            if not self.interrupted:
                for chain in sched.reclaim(jobs.running):
                    jobs.set_threads(chain, chain.threads)
                self._start(sched, jobs, executor, st)
                if not st.dirty:  # every stage that could be decided was: the cores nobody waits for are lent
                    for chain in sched.lend(jobs.running):
                        jobs.set_threads(chain, chain.threads)
            self._watch(jobs)
            for chain in [c for c in jobs.running if c.job.done()]:
                sched.release(chain)
                jobs.finish(chain, self.interrupted)
                st.dirty = True
            if self.interrupted:
                self._stop(sched, jobs, st)
            if not jobs.running and not sched.queue:
                if self.interrupted or not sched.decidable():
                    break
                st.dirty = True
            if time.monotonic() - st.last_progress > self.settings.progress_s and jobs.running:
                self.monitor.progress(plan, len(sched.queue), jobs.running, self.settings.executor == "slurm")
                st.last_progress = time.monotonic()
            time.sleep(self.poll_s)
        for stage, state in plan.state.items():
            if state == "undecided":
                plan.state[stage] = CANCELLED if self.interrupted else BLOCKED

    def _start(self, sched: Scheduler, jobs: JobLifecycle, executor, st: _LoopState) -> None:
        """Start queued jobs while slots are free."""
        while sched.queue and not self.interrupted:
            chain = sched.next_chain(jobs.running)
            if chain is None:  # no free slot; or an exclusive stage waits for the others, or the others for it
                return
            st.outcome.chains.append(chain)
            if self.workspace.prepare_outputs(chain, sched.plan):
                st.dirty = True
                continue
            slot = sched.place(chain)
            jobs.submit(executor, chain, slot, exclusive=sched.is_exclusive(chain), follow_budget=sched.handoff)

    @staticmethod
    def _watch(jobs: JobLifecycle) -> None:
        """Note when each stage of a job started (for its progress line)."""
        for chain in jobs.running:
            for i, log in enumerate(chain.logs):
                if i not in chain.seen and log.exists():
                    chain.seen[i] = time.time()
                    if i == 0:
                        jobs.save_active()  # the job has started: its pid is in its record

    def _stop(self, sched: Scheduler, jobs: JobLifecycle, st: _LoopState) -> None:
        """Interrupted: cancel what is queued and running (again for a local job that had not started), and end
        the job processes still there 30 s later."""
        if st.cancelled:
            for chain in jobs.running:  # a local job that had not started when the others were stopped
                if not chain.cancel_sent:
                    jobs.cancel(chain)
        else:
            st.cancelled = True
            for chain in [*sched.queue, *(jobs.running if self.settings.executor == "slurm" else [])]:
                # scancel'ed SLURM jobs may take minutes to be reported done: not waited for
                chain.status = CANCELLED
                for s in chain.stages:
                    sched.plan.state[s] = CANCELLED
            sched.queue.clear()
            for chain in jobs.running:
                jobs.cancel(chain)
            if self.settings.executor == "slurm":
                jobs.running.clear()
            st.deadline = time.monotonic() + 30
        if time.monotonic() > st.deadline:
            for chain in jobs.running:
                pid = jobs.job_process(chain)
                if pid is not None:
                    terminate_tree(pid)
            st.deadline = float("inf")


# ------------------------------------------------------------------------------------------ dry run


def dry_run(grid: Grid, out: TextIO) -> None:
    """Print what the grid would run now (without running or changing anything)."""
    with grid.in_root():
        _dry_run(grid, out)


def _dry_run(grid: Grid, out: TextIO) -> None:
    plan = grid.load_plan()
    with grid.workspace.locked():
        changed = [s for s in plan.steps if grid.workspace.changed(s)]
    stale = set(changed)
    for s in plan.steps:  # plan order: upstream first
        if any(u in stale for u in plan.upstream[s]):
            stale.add(s)
    print(f"{len(plan.steps)} stages to check; {len(changed)} out of date now:", file=out)
    for s in plan.steps:
        if s in changed:
            print(f"  {s.name}", file=out)
    later = [s.name for s in plan.steps if s in stale and s not in changed]
    if later:
        print(f"{len(later)} more checked once what they need has run (e.g. {', '.join(later[:3])})", file=out)
    if plan.excluded:
        print(f"excluded (left to `dvc repro`): {', '.join(plan.excluded)}", file=out)
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
    try:
        root = find_root()
    except NotDvcProject as err:
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
