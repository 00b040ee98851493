"""Run the out-of-date stages of ``dvc.yaml`` in parallel, N jobs at a time, and record them in dvc.lock.

    python -m pipeline.grid --jobs 4                     # this machine: one GPU per job, or cores shared out
    python -m pipeline.grid --executor slurm --jobs 32   # one sbatch job per run (settings: grid.slurm)
    python -m pipeline.grid --dry-run                    # what would run, and the sbatch script
    python -m pipeline.grid 'train@kvasir-*'             # only these stages (and what they need)

``dvc repro`` runs one stage at a time. This command reads the stage graph from DVC itself (the
resolved ``dvc.yaml``, ``dvc.lock`` and DVC's own ``Stage.changed()``), walks it in the order
``dvc repro`` would, and runs the stages that are out of date as jobs of a submitit executor
(:mod:`pipeline.grid.executors`): a stage starts as soon as every stage it depends on is up to date, and a
train -> evaluate pair (a stage followed by the one stage that needs only it) runs as one job. Each job
runs the stage's own ``cmd`` from the DVC index; before it starts, the coordinator removes the stage's
outputs (``Stage.remove_outs``, as ``dvc repro`` does) or restores them from DVC's run cache when an
identical run is recorded there.

Only this coordinating process writes dvc.lock: when a job finishes, its successful stages are committed
one job at a time (``Repo.commit(stage, force=True)``, i.e. ``dvc commit -f``) under DVC's repository
lock. DVC rewrites dvc.lock in place, so each commit is journalled first (a copy of dvc.lock and the
stage names under ``.dvc/tmp/grid/``): a grid killed during a commit is rolled back and the commit
redone by the next run. A failed job leaves its stages (and what depends on them) out of date; the
command lists the failures with the ends of their logs and exits with status 1. A killed grid's jobs
notice that its heartbeat stopped and end their commands; the next run goes on with what is left.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from core.cli import run
from core.errors import UserError
from core.fsutil import atomic_write_text
from pipeline.grid.executors import (
    GridSettings,
    Slot,
    cpu_count,
    load_grid_settings,
    make_executor,
    plan_slots,
    sbatch_script,
    thread_env,
)
from pipeline.grid.jobs import ChainJob, ChainResult, StageCommand, terminate_tree

GRID_DIR = Path(".dvc") / "tmp" / "grid"  # DVC git-ignores .dvc/tmp
KEEP_RUNS = 5  # run folders (submitit files and stage logs) kept under GRID_DIR/runs
SLURM_DEFAULT_JOBS = 16
EPOCH_RE = re.compile(r"^epoch (\d+)/(\d+)\b", re.MULTILINE)

DONE, CACHED, UPTODATE = "done", "cached", "up to date"
FAILED, BLOCKED, CANCELLED = "failed", "blocked", "cancelled"
SETTLED = {DONE, CACHED, UPTODATE}
NOT_RUN = {FAILED, BLOCKED, CANCELLED}


class GridError(UserError):
    """The grid cannot start: not a DVC project, another grid running, an unknown target."""


# ------------------------------------------------------------------------------------------ helpers


def _fmt_s(seconds: float | None) -> str:
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


def matches(name: str, pattern: str) -> bool:
    """A stage name matches a target as ``dvc repro`` targets do: exactly, by group (``train`` covers
    ``train@...``), or as a glob (``train@kvasir-*``)."""
    return name == pattern or name.split("@", 1)[0] == pattern or fnmatch.fnmatchcase(name, pattern)


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


class Journal:
    """Makes each commit to dvc.lock all-or-nothing across a kill: DVC writes the file in place."""

    def __init__(self, root: Path, grid_dir: Path) -> None:
        self.lock_file = root / "dvc.lock"
        self.marker = grid_dir / "commit.json"
        self.backup = grid_dir / "dvc.lock.before"

    def begin(self, names: list[str]) -> None:
        had_lock = self.lock_file.exists()
        if had_lock:
            atomic_write_text(self.backup, self.lock_file.read_text(encoding="utf-8"))
        atomic_write_text(self.marker, json.dumps({"stages": names, "had_lock": had_lock}))

    def end(self) -> None:
        self.marker.unlink(missing_ok=True)

    def pending(self) -> list[str] | None:
        """Stages of an interrupted commit (after putting dvc.lock back as it was), else None."""
        if not self.marker.exists():
            return None
        info = json.loads(self.marker.read_text(encoding="utf-8"))
        if info["had_lock"]:
            atomic_write_text(self.lock_file, self.backup.read_text(encoding="utf-8"))
        else:
            self.lock_file.unlink(missing_ok=True)
        return list(info["stages"])


# -------------------------------------------------------------------------------------------- jobs


@dataclass
class Chain:
    """One job: stages that run one after the other in one slot."""

    stages: list[Any]  # dvc Stage objects
    logs: list[Path]
    status: str = "queued"  # queued, running, done, failed, cancelled, cached
    job: Any = None
    slot: Slot | None = None
    extra_slots: list[Slot] = field(default_factory=list)  # the cores it borrowed besides its own slot
    result: ChainResult | None = None
    crash: str | None = None  # the job itself failed (not a stage command)
    submitted: float | None = None
    where: str = ""
    errors: dict[str, str] = field(default_factory=dict)  # commit errors by stage
    seen: dict[int, float] = field(default_factory=dict)  # when the coordinator saw each stage start

    @property
    def names(self) -> list[str]:
        return [s.addressing for s in self.stages]

    @property
    def label(self) -> str:
        first, rest = self.names[0], [n.split("@", 1)[0] for n in self.names[1:]]
        return " -> ".join([first, *rest])

    def wall(self) -> float | None:
        if self.result is None:
            return None
        starts = [s.start for s in self.result.stages if s.start is not None]
        ends = [s.end for s in self.result.stages if s.end is not None]
        return max(ends) - min(starts) if starts and ends else None

    def current(self) -> int:
        """Index of the stage the job is running (the last whose log exists)."""
        present = [i for i, log in enumerate(self.logs) if log.exists()]
        return present[-1] if present else 0


def past_job_seconds(grid_dir: Path) -> dict[str, float]:
    """Wall seconds of every finished job of earlier grids (their ``summary.json``), by the job's first
    stage; the newest grid wins."""
    seconds: dict[str, float] = {}
    for summary in sorted((grid_dir / "runs").glob("*/summary.json")):  # run folders sort by start time
        try:
            runs = json.loads(summary.read_text(encoding="utf-8")).get("runs", [])
        except (OSError, ValueError, AttributeError):
            continue
        for job in runs:
            if isinstance(job, dict) and job.get("status") == DONE and job.get("seconds") and job.get("stages"):
                seconds[job["stages"][0]] = float(job["seconds"])
    return seconds


def recorded_seconds(stage: Any) -> float | None:
    """``seconds`` of a ``train.json`` output of the stage still in the workspace (its last run, e.g. the
    committed one in a fresh clone), or None."""
    for out in stage.outs:
        path = Path(str(getattr(out, "fs_path", "") or ""))
        if path.name != "train.json" or not path.is_file():
            continue
        try:
            seconds = json.loads(path.read_text(encoding="utf-8")).get("seconds")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(seconds, (int, float)) and seconds > 0:
            return float(seconds)
    return None


def deps_bytes(stage: Any) -> int:
    """Bytes on disk of a stage's dependencies (a prepared dataset: its size says how long a run takes)."""
    total = 0
    for dep in stage.deps:
        if getattr(dep, "fs_path", None) is None:
            continue
        path = Path(str(dep.fs_path))
        files = [path] if path.is_file() else path.rglob("*") if path.is_dir() else []
        total += sum(f.stat().st_size for f in files if f.is_file())
    return total


def dice_of(stages: list[Any]) -> float | None:
    """Test Dice (percent) from a JSON output of ``stages`` with a ``dice.mean`` entry (evaluate's metrics.json)."""
    for stage in reversed(stages):
        for out in stage.outs:
            if str(out.fs_path).endswith(".json"):
                try:
                    return float(json.loads(Path(out.fs_path).read_text(encoding="utf-8"))["dice"]["mean"])
                except (OSError, ValueError, KeyError, TypeError):
                    continue
    return None


def epoch_progress(log: Path, csv_file: Path | None, started: float | None) -> str:
    """``epoch k/N, ETA h:mm:ss`` from a training log (``epoch k/N`` lines) and its per-epoch log.csv."""
    found = EPOCH_RE.findall(tail(log, 200))
    if not found:
        since = f" {_fmt_s(time.time() - started)}" if started is not None else ""
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
    return f"epoch {k}/{n}" + (f", ETA {_fmt_s(eta)}" if eta is not None else "")


def shares_cores(settings: GridSettings, slots: list[Slot | None]) -> bool:
    """Whether the local executor shares the cores out per job (no GPU, neither jobs nor threads per job
    given): the slots are then single cores, and a job takes as many as it can without starving the jobs
    queued behind it."""
    return (
        settings.executor == "local"
        and not settings.jobs
        and not settings.threads_per_job
        and all(s is not None and s.gpu is None for s in slots)
    )


def describe_local(settings: GridSettings, slots: list[Slot]) -> str:
    """How the local executor places jobs, for the grid's first line and ``--dry-run``."""
    if shares_cores(settings, slots):  # type: ignore[arg-type]
        return f"up to {len(slots)} jobs on the cpu, its {len(slots)} cores shared out among the jobs ready to start"
    return describe_slots(slots)


def describe_slots(slots: list[Slot]) -> str:
    """``2 jobs: cpu, 1 thread each`` or ``8 jobs: gpus 0,1,2,3 (2 jobs each), 4 threads each``."""
    gpus = sorted({s.gpu for s in slots if s.gpu is not None})
    threads = sorted({s.threads for s in slots})
    where = "cpu" if not gpus else f"gpu{'s' * (len(gpus) > 1)} {','.join(map(str, gpus))}"
    if gpus and len(slots) > len(gpus):
        where += f" (up to {-(-len(slots) // len(gpus))} jobs each)"
    per = "/".join(map(str, threads))
    return f"{len(slots)} job{'s' * (len(slots) > 1)}: {where}, {per} thread{'s' * (per != '1')} each"


# ------------------------------------------------------------------------------------- coordinator


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


class Grid:
    """The coordinating process: decides, submits, polls, commits, reports."""

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

    # ------------------------------------------------------------------ output
    def say(self, msg: str) -> None:
        elapsed = int(time.time() - self.t0)
        print(f"[{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}] {msg}", file=self.out, flush=True)

    # ------------------------------------------------------------------ DVC access
    @contextmanager
    def dvc_locked(self, patience_s: float = 300.0):
        """DVC's repository lock (retried: a `dvc status` in another terminal holds it briefly)."""
        from dvc.lock import LockError
        from dvc.repo import lock_repo

        deadline = time.monotonic() + patience_s
        while True:
            try:
                ctx = lock_repo(self.repo)
                ctx.__enter__()
                break
            except LockError:
                if time.monotonic() > deadline:
                    raise GridError("another DVC process holds the repository lock; try again") from None
                time.sleep(1.0)
        try:
            yield
        finally:
            ctx.__exit__(None, None, None)

    def load_plan(self) -> None:
        """The stages to consider, in the order `dvc repro` would visit them, and their dependencies."""
        from dvc.exceptions import DvcException
        from dvc.repo.reproduce import get_active_graph, plan_repro

        try:
            with self.dvc_locked():
                graph = get_active_graph(self.repo.index.graph)
        except DvcException as err:
            raise GridError(f"{self.root}: DVC cannot read the pipeline: {err}") from err
        by_name = {s.addressing: s for s in graph.nodes}
        if self.targets:
            chosen = []
            for target in self.targets:
                hits = [s for name, s in by_name.items() if matches(name, target)]
                if not hits:
                    raise GridError(f"target {target!r} matches no stage of dvc.yaml (see `dvc stage list`)")
                chosen.extend(h for h in hits if h not in chosen)
            steps = plan_repro(graph, chosen)
        else:  # like `dvc repro` without targets: the stages of ./dvc.yaml and what they need
            own = [s for s in graph.nodes if Path(s.path) == self.root / "dvc.yaml"]
            steps = plan_repro(graph, own) if own else plan_repro(graph)
        excluded = [s for s in steps if any(matches(s.addressing, p) for p in self.settings.exclude)]
        self.graph = graph
        self.steps = [s for s in steps if s not in excluded]
        self.excluded = [s.addressing for s in excluded]
        step_set = set(self.steps)
        self.upstream = {s: [u for u in graph.successors(s) if u in step_set] for s in self.steps}
        self.downstream = {s: [d for d in graph.predecessors(s) if d in step_set] for s in self.steps}
        self.state: dict[Any, str] = dict.fromkeys(self.steps, "undecided")

    def changed(self, stage) -> bool:
        return stage.changed(upstream=list(self.graph.successors(stage)))

    def commit(self, names: list[str]) -> dict[str, str]:
        """Record stages in dvc.lock (``dvc commit -f``), journalled; returns {name: error} of failures."""
        from dvc.exceptions import DvcException

        errors: dict[str, str] = {}
        with self.dvc_locked():
            self.journal.begin(names)
            for name in names:
                if errors:  # a later stage of a chain needs the earlier one recorded
                    errors[name] = "not recorded: an earlier stage of its job failed to commit"
                    continue
                try:
                    self.repo.commit(name, force=True)
                except DvcException as err:
                    errors[name] = f"dvc commit: {err}"
            self.journal.end()
        return errors

    def recover(self) -> None:
        """Undo a commit a killed grid left half-written, then redo it (its jobs had finished)."""
        names = self.journal.pending()
        if names is None:
            return
        self.say(f"dvc.lock: an earlier grid was stopped while recording {', '.join(names)}; recording again")
        errors = self.commit(names)
        for name, err in errors.items():
            self.say(f"  {name}: {err} (it will run again)")

    # ------------------------------------------------------------------ deciding
    def decide(self) -> list[Chain]:
        """Settle every stage whose upstream is settled: up to date, blocked, or a new job."""
        from dvc.exceptions import DvcException

        new: list[Chain] = []
        with self.dvc_locked():
            for stage in self.steps:
                if self.state[stage] != "undecided":
                    continue
                ups = [self.state[u] for u in self.upstream[stage]]
                if any(u in NOT_RUN for u in ups):
                    self.state[stage] = BLOCKED
                    continue
                if not all(u in SETTLED for u in ups):
                    continue
                try:
                    is_changed = self.changed(stage)
                except DvcException as err:
                    self.state[stage] = FAILED
                    self.say(f"FAILED  {stage.addressing}: {err}")
                    continue
                if not is_changed:
                    self.state[stage] = UPTODATE
                    continue
                if not stage.cmd:  # a data source (dvc add) or import that changed: dvc repro's job
                    self.state[stage] = FAILED
                    self.say(f"FAILED  {stage.addressing}: changed and has no command (run `dvc repro` for it)")
                    continue
                chain = self.chain_from(stage)
                for s in chain.stages:
                    self.state[s] = "queued"
                new.append(chain)
        return new

    def chain_from(self, head) -> Chain:
        """``head`` plus each next stage that depends, among unsettled stages, on the chain's last only
        (train -> evaluate)."""
        stages = [head]
        while True:
            last = stages[-1]
            nxt = [d for d in self.downstream[last] if self.state[d] == "undecided"]
            if len(nxt) != 1:
                break
            cand = nxt[0]
            others = [u for u in self.upstream[cand] if u not in stages]
            if not all(self.state[u] in SETTLED for u in others) or not cand.cmd:
                break
            stages.append(cand)
        logs = [self.run_dir / "logs" / f"{s.addressing.replace('/', '_')}.log" for s in stages]
        return Chain(stages=stages, logs=logs)

    # ------------------------------------------------------------------ running
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
        )

    def prepare_outputs(self, chain: Chain) -> bool:
        """Remove the chain's outputs as `dvc repro` does; True when the head was restored from the run
        cache instead (then the rest of the chain is decided again)."""
        from dvc.stage.cache import RunCacheNotFoundError

        head = chain.stages[0]
        with self.dvc_locked():
            head.remove_outs(ignore_remove=False, force=False)
            try:
                self.repo.stage_cache.restore(head)
            except RunCacheNotFoundError:
                for stage in chain.stages[1:]:
                    stage.remove_outs(ignore_remove=False, force=False)
                return False
        errors = self.commit([head.addressing])
        self.state[head] = FAILED if errors else CACHED
        for s in chain.stages[1:]:
            self.state[s] = "undecided"
        chain.stages, chain.logs, chain.status, chain.where = [head], chain.logs[:1], CACHED, "run cache"
        self.say(f"cached  {head.addressing} (restored from DVC's run cache)")
        return True

    def submit(self, executor, chain: Chain, slot: Slot | None) -> None:
        from pipeline.grid.jobs import run_chain

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
                chain.job = executor.submit(run_chain, job)
            finally:
                signal.signal(signal.SIGINT, old)
        else:
            chain.job = executor.submit(run_chain, job)
        self.running.append(chain)
        where = slot.describe() if slot is not None else f"slurm job {chain.job.job_id}"
        chain.where = where
        self.say(f"run     {chain.label}  ({where})")
        self.save_active()

    def finish(self, chain: Chain) -> None:
        """Collect a finished job: commit what succeeded, mark the rest failed or blocked."""
        job = chain.job
        if self.settings.executor == "local" and not job.paths.result_pickle.exists():
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
                stopped = self.interrupted or (res is not None and (res.stopped or "").startswith("cancelled"))
                self.state[stage] = CANCELLED if stopped and stage.addressing not in errors else FAILED
                failed_here = True
            else:
                self.state[stage] = CANCELLED if self.interrupted else BLOCKED
        states = {self.state[s] for s in chain.stages}
        chain.status = FAILED if FAILED in states else CANCELLED if CANCELLED in states else DONE
        chain.errors = errors
        if chain.status == DONE:
            dice = dice_of(chain.stages)
            extra = f"  Dice {dice:.2f} %" if dice is not None else ""
            self.say(f"done    {chain.label}  {_fmt_s(chain.wall())}{extra}")
        else:
            first = next(s for s in chain.stages if self.state[s] in (FAILED, CANCELLED))
            why = errors.get(first.addressing) or (res.stopped if res and res.stopped else None)
            rc = res.stages[chain.stages.index(first)].returncode if res else None
            why = why or (f"exit status {rc}" if rc is not None else chain.crash or "did not run")
            self.say(f"{self.state[first].upper():7s} {first.addressing}: {why}")
        self.save_active()

    def cancel(self, chain: Chain) -> None:
        """Stop a running job: SIGTERM to a local job's controller (it passes it on), scancel on SLURM."""
        proc = getattr(chain.job, "_process", None)
        try:
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
            elif self.settings.executor == "slurm":
                chain.job.cancel(check=False)
        except Exception:  # noqa: BLE001 - best effort: without a heartbeat the job stops by itself anyway
            pass

    def save_active(self) -> None:
        """The jobs in flight, so that a later grid can stop them if this one is killed."""
        import psutil

        local, slurm = [], []
        for chain in self.running:
            if self.settings.executor == "local" and chain.job is not None:
                proc = getattr(chain.job, "_process", None)
                try:
                    local.append([proc.pid, psutil.Process(proc.pid).create_time()])
                except (AttributeError, psutil.NoSuchProcess):
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

    # ------------------------------------------------------------------ progress
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

    # ------------------------------------------------------------------ the loop
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
            for chain in [c for c in self.running if c.job.done()]:
                self.running.remove(chain)
                free.append(chain.slot)
                free.extend(chain.extra_slots)
                self.finish(chain)
                self.dirty = True
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
                    proc = getattr(chain.job, "_process", None)
                    if proc is not None:
                        terminate_tree(proc)
                deadline = float("inf")
            if time.monotonic() - last_progress > settings.progress_s and self.running:
                self.progress()
                last_progress = time.monotonic()
            time.sleep(self.poll_s)
        for stage, st in self.state.items():
            if st == "undecided":
                self.state[stage] = CANCELLED if self.interrupted else BLOCKED

    def priority(self, chain: Chain) -> tuple:
        """Sort key of the queue, longest job first so that no long job starts last and runs alone: chains
        (train -> evaluate) before single stages; then jobs with no earlier time (they may be long) by the
        size of their inputs, then the others by their earlier time: an earlier grid's wall time, else the
        ``seconds`` of the ``train.json`` the stage's last run left; ties keep dvc.yaml's order."""
        head = chain.names[0]
        if head not in self.estimates:
            past = self.past_seconds.get(head) or recorded_seconds(chain.stages[0])
            self.estimates[head] = (1, -past) if past else (0, -deps_bytes(chain.stages[0]))
        return (-len(chain.stages), *self.estimates[head])

    def is_exclusive(self, chain: Chain) -> bool:
        return any(matches(s.addressing, p) for s in chain.stages for p in self.settings.exclusive)

    def next_chain(self) -> Chain | None:
        """The next job to start: the first in the queue, unless an exclusive one is running; an
        exclusive one only when nothing runs (the others go first while it waits)."""
        if any(self.is_exclusive(c) for c in self.running):
            return None
        for chain in self.queue:
            if not self.is_exclusive(chain) or not self.running:
                self.queue.remove(chain)
                return chain
        return None

    def decidable(self) -> bool:
        """Whether a stage waits only for the next pass of :meth:`decide`."""
        done = SETTLED | NOT_RUN
        return any(
            st == "undecided" and all(self.state[u] in done for u in self.upstream[s]) for s, st in self.state.items()
        )

    # ------------------------------------------------------------------ summary
    def summary(self, outcome: Outcome) -> None:
        from tabulate import tabulate

        rows = []
        for c in outcome.chains:
            dice = dice_of(c.stages) if c.status == DONE else None
            rows.append([c.label, c.status, _fmt_s(c.wall()), "-" if dice is None else f"{dice:.2f}", c.where])
        if rows:
            print("", file=self.out)
            print(tabulate(rows, headers=["run", "status", "wall", "test Dice %", "where"]), file=self.out)
        counts: dict[str, int] = {}
        for st in outcome.states.values():
            counts[st] = counts.get(st, 0) + 1
        print(
            f"\ngrid: {', '.join(f'{n} {k}' for k, n in sorted(counts.items()))} stages "
            f"in {_fmt_s(outcome.seconds)}; dvc.lock records every finished stage.",
            file=self.out,
        )
        for c in outcome.chains:
            for i, stage in enumerate(c.stages):
                if self.state.get(stage) != FAILED:
                    continue
                res = c.result.stages[i] if c.result else None
                err = getattr(c, "errors", {}).get(stage.addressing)
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


# ------------------------------------------------------------------------------------------ dry run


def dry_run(grid: Grid, out: TextIO) -> None:
    """Print what the grid would run now (without running or changing anything)."""
    with grid.in_root():
        _dry_run(grid, out)


def _dry_run(grid: Grid, out: TextIO) -> None:
    grid.load_plan()
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
        script = sbatch_script(make_executor(settings, grid.run_dir / "submitit", preview=True))
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


if __name__ == "__main__":
    raise SystemExit(run(main))
