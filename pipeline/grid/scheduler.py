"""The grid's scheduler (:class:`Scheduler`): which stages run next, as which jobs (a train -> evaluate pair is one
job), in which order (longest first), and where (an exclusive stage alone; on a CPU the free cores shared out among
the jobs ready to start, and the cores a finished job frees lent to the jobs still running when none waits)."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from engine.params import GridSettings
from pipeline.grid.dvc_adapter import DvcError, StageInfo
from pipeline.grid.dvcrepo import Plan, Workspace, matches
from pipeline.grid.executors import Slot
from pipeline.grid.jobs import ChainResult
from pipeline.grid.outputs import deps_bytes
from pipeline.grid.states import BLOCKED, DONE, FAILED, NOT_RUN, SETTLED, UPTODATE


@dataclass
class Chain:
    """One job: stages that run one after the other in one slot."""

    stages: list[StageInfo]
    logs: list[Path]
    status: str = "queued"  # queued, running, done, failed, cancelled, cached
    job: Any = None
    slot: Slot | None = None
    extra_slots: list[Slot] = field(default_factory=list)  # the cores it borrowed besides its own slot
    lent: int = 0  # how many of extra_slots it was lent while running (taken back first)
    threads_log: list[tuple[float, int]] = field(default_factory=list)  # (time, thread budget) at each change
    estimate: float | None = None  # estimated seconds of its training at one thread (pipeline.grid.estimate)
    result: ChainResult | None = None
    crash: str | None = None  # the job itself failed (not a stage command)
    submitted: float | None = None
    where: str = ""
    errors: dict[str, str] = field(default_factory=dict)  # commit errors by stage
    seen: dict[int, float] = field(default_factory=dict)  # when the coordinator saw each stage start
    record: Path | None = None  # the job's record of its attempts (pipeline.grid.jobs.read_record)
    requeues: int = 0  # times SLURM or submitit restarted the job
    lost_epochs: int = 0  # epochs trained and lost to those restarts (train.json "resumed")
    cancel_sent: bool = False
    ended_outside: str | None = None  # SLURM's state of a job that ended without a result

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

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

    @property
    def threads(self) -> int:
        """The CPU threads of its slots."""
        return sum(s.threads for s in [self.slot, *self.extra_slots] if s is not None)

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


def lends_cores(settings: GridSettings, slots: list[Slot | None]) -> bool:
    """Whether the cores a finished job frees go to the jobs still running when no job waits: local jobs on the
    CPU whose threads per job were not fixed (``grid.threads_per_job``). A training follows its budget at its next
    epoch (:mod:`engine.threads`). GPUs are not lent: a running training cannot take a second GPU."""
    return (
        settings.executor == "local"
        and not settings.threads_per_job
        and all(s is not None and s.gpu is None for s in slots)
    )


class Estimator(Protocol):
    def estimate(self, stages: list[StageInfo]) -> list[float | None]: ...


class Scheduler:
    """Which job runs next and where. Owns the queue, the free slots and the thread budgets of running jobs; reads
    the plan and settles its stages (up to date, blocked, queued); asks the workspace which stages changed."""

    def __init__(
        self,
        plan: Plan,
        workspace: Workspace,
        settings: GridSettings,
        slots: list[Slot | None],
        run_dir: Path,
        say: Callable[[str], None],
        *,
        estimator: Estimator | None = None,
        past_seconds: dict[str, float] | None = None,
    ) -> None:
        self.plan, self.workspace, self.settings, self.run_dir, self.say = plan, workspace, settings, run_dir, say
        self.queue: deque[Chain] = deque()
        self.free: deque[Slot | None] = deque(slots)
        self.share_cores = shares_cores(settings, slots)
        self.handoff = lends_cores(settings, slots)
        self.estimator = estimator
        self.past_seconds = past_seconds or {}
        self.keys: dict[str, tuple] = {}  # by job head: its length key, for the queue's order

    def decide(self) -> list[Chain]:
        """Settle every stage whose upstream is settled: up to date, blocked, or a new job."""
        state, new = self.plan.state, []
        with self.workspace.locked():
            for stage in self.plan.steps:
                if state[stage] != "undecided":
                    continue
                ups = [state[u] for u in self.plan.upstream[stage]]
                if any(u in NOT_RUN for u in ups):
                    state[stage] = BLOCKED
                    continue
                if not all(u in SETTLED for u in ups):
                    continue
                try:
                    is_changed = self.workspace.changed(stage)
                except (DvcError, OSError) as err:
                    state[stage] = FAILED
                    self.say(f"FAILED  {stage.name}: {err}")
                    continue
                if not is_changed:
                    state[stage] = UPTODATE
                    continue
                if not stage.cmds:  # a data source (dvc add) or import that changed: dvc repro's job
                    state[stage] = FAILED
                    self.say(f"FAILED  {stage.name}: changed and has no command (run `dvc repro` for it)")
                    continue
                chain = self.chain_from(stage)
                for s in chain.stages:
                    state[s] = "queued"
                new.append(chain)
        return new

    def enqueue(self, chains: list[Chain]) -> None:
        """Add new jobs to the queue, longest first (their trainings' estimates measured first, in parallel)."""
        if self.estimator is not None and chains:
            for chain, seconds in zip(chains, self.estimator.estimate([c.stages[0] for c in chains]), strict=True):
                chain.estimate = seconds
        self.queue = deque(sorted([*self.queue, *chains], key=self.priority))

    def chain_from(self, head: StageInfo) -> Chain:
        """``head`` plus the next stages that need, among unsettled stages, nothing but the chain: the one
        next stage continues the chain (train -> evaluate); of several (a checkpoint's evaluate and its
        transfers), those that are ready join it and end it, unless one of them could start a chain of its
        own (prepare -> the trainings: separate jobs)."""
        stages, down = [head], self.plan.downstream
        while True:
            nxt = [d for d in down[stages[-1]] if self.plan.state[d] == "undecided"]
            ready = [c for c in nxt if c.cmds and self.needs_only(c, stages)]
            if len(nxt) == 1 and ready:
                stages.append(ready[0])
                continue
            group = stages + ready
            if len(nxt) > 1 and ready and not any(self.needs_only(d, group) for c in ready for d in down[c]):
                stages += [s for s in self.plan.steps if s in ready]  # dvc.yaml's order
            break
        logs = [self.run_dir / "logs" / f"{s.name.replace('/', '_')}.log" for s in stages]
        record = self.run_dir / "jobs" / f"{stages[0].name.replace('/', '_')}.json"
        return Chain(stages=stages, logs=logs, record=record)

    def needs_only(self, stage: StageInfo, stages: list[StageInfo]) -> bool:
        """Whether ``stage`` is undecided and every stage it needs is settled or one of ``stages``."""
        state = self.plan.state
        return state[stage] == "undecided" and all(
            state[u] in SETTLED for u in self.plan.upstream[stage] if u not in stages
        )

    def priority(self, chain: Chain) -> tuple:
        """Sort key of the queue, longest job first so that no long job starts last and runs alone: chains
        (train -> evaluate) before single stages; then jobs with neither an estimate nor an earlier time on this
        machine (they may be long) by the size of their inputs; then the others by their training's estimate
        (:mod:`pipeline.grid.estimate`), else an earlier grid's wall time here. Ties keep dvc.yaml's order. Times
        that another machine recorded (a committed train.json) are not used: another CPU orders models otherwise."""
        head = chain.names[0]
        if head not in self.keys:
            seconds = chain.estimate or self.past_seconds.get(head)
            self.keys[head] = (1, -seconds) if seconds else (0, -deps_bytes(chain.stages[0]))
        return (-len(chain.stages), *self.keys[head])

    def is_exclusive(self, chain: Chain) -> bool:
        return any(matches(n, p) for n in chain.names for p in self.settings.exclusive)

    def next_chain(self, running: list[Chain]) -> Chain | None:
        """The next job to start: the first in the queue, unless an exclusive one is running; an
        exclusive one only when nothing runs (the others go first while it waits)."""
        if not self.free or any(self.is_exclusive(c) for c in running):
            return None
        for chain in self.queue:
            if not self.is_exclusive(chain) or not running:
                self.queue.remove(chain)
                return chain
        return None

    def place(self, chain: Chain) -> Slot | None:
        """Take a free slot for the job (and, sharing the cores, as many more as it can have without starving the
        jobs queued behind it); returns the slot it runs in, with its threads."""
        chain.slot = slot = self.free.popleft()
        if slot is not None and self.share_cores and not self.is_exclusive(chain):
            # the free cores split evenly among this job and the ones queued behind it, so that four runs on 16
            # cores get 4 threads each rather than one each and 12 idle cores
            waiting = sum(not self.is_exclusive(c) for c in self.queue)  # an exclusive one runs alone later
            threads = max(1, (len(self.free) + 1) // (waiting + 1))
            chain.extra_slots = [self.free.popleft() for _ in range(threads - 1)]
        return None if slot is None else replace(slot, threads=chain.threads)

    def release(self, chain: Chain) -> None:
        """A job ended: its slots are free again."""
        self.free.extend([chain.slot, *chain.extra_slots])
        chain.extra_slots, chain.lent = [], 0

    def lend(self, running: list[Chain]) -> list[Chain]:
        """No job that could start waits and cores are free: give them to the running jobs, one at a time to the job
        with the fewest threads (the longest estimate first among equals). An exclusive job waiting for every core
        does not stop this: it starts only when the running ones end, which the lent cores bring sooner. Returns the
        jobs whose budget grew."""
        takers = [c for c in running if not self.is_exclusive(c)]
        waiting = any(not self.is_exclusive(c) for c in self.queue)
        if not self.handoff or waiting or not takers:
            return []
        grown: list[Chain] = []
        while self.free:
            chain = min(takers, key=lambda c: (c.threads, -(c.estimate or 0.0)))
            chain.extra_slots.append(self.free.popleft())
            chain.lent += 1
            grown += [chain] if chain not in grown else []
        return grown

    def reclaim(self, running: list[Chain]) -> list[Chain]:
        """Jobs wait and no slot is free: take back cores lent to running jobs (from those with the most
        threads), one per waiting job that could start. Returns the jobs whose budget shrank."""
        if self.free or any(self.is_exclusive(c) for c in running):
            return []
        wanted = sum(not self.is_exclusive(c) for c in self.queue)
        shrunk: list[Chain] = []
        while wanted and (lenders := [c for c in running if c.lent]):
            chain = max(lenders, key=lambda c: c.threads)
            self.free.append(chain.extra_slots.pop())
            chain.lent -= 1
            wanted -= 1
            shrunk += [chain] if chain not in shrunk else []
        return shrunk

    def decidable(self) -> bool:
        """Whether a stage waits only for the next pass of :meth:`decide`."""
        done = SETTLED | NOT_RUN
        return any(
            st == "undecided" and all(self.plan.state[u] in done for u in self.plan.upstream[s])
            for s, st in self.plan.state.items()
        )
