"""The grid's scheduler: which stages run next, as which jobs (a train -> evaluate pair is one job), in which
order (longest first), and where (an exclusive stage alone; on a CPU the free cores shared out among the jobs
ready to start)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.params import GridSettings
from pipeline.grid.dvcrepo import deps_bytes, matches, recorded_seconds
from pipeline.grid.executors import Slot
from pipeline.grid.jobs import ChainResult
from pipeline.grid.states import BLOCKED, DONE, FAILED, NOT_RUN, SETTLED, UPTODATE


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
    record: Path | None = None  # the job's record of its attempts (pipeline.grid.jobs.read_record)
    requeues: int = 0  # times SLURM or submitit restarted the job
    lost_epochs: int = 0  # epochs trained and lost to those restarts (train.json "resumed")
    cancel_sent: bool = False

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


class Scheduling:
    """The coordinator's scheduling side (a part of :class:`pipeline.grid.coordinator.Grid`): reads the plan and
    ``self.state``, ``self.running`` and ``self.queue``; decides new jobs and their order."""

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
                except (DvcException, OSError) as err:
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
        """``head`` plus the next stages that need, among unsettled stages, nothing but the chain: the one
        next stage continues the chain (train -> evaluate); of several (a checkpoint's evaluate and its
        transfers), those that are ready join it and end it, unless one of them could start a chain of its
        own (prepare -> the trainings: separate jobs)."""
        stages = [head]
        while True:
            nxt = [d for d in self.downstream[stages[-1]] if self.state[d] == "undecided"]
            ready = [c for c in nxt if c.cmd and self.needs_only(c, stages)]
            if len(nxt) == 1 and ready:
                stages.append(ready[0])
                continue
            group = stages + ready
            if len(nxt) > 1 and ready and not any(self.needs_only(d, group) for c in ready for d in self.downstream[c]):
                stages += [s for s in self.steps if s in ready]  # dvc.yaml's order
            break
        logs = [self.run_dir / "logs" / f"{s.addressing.replace('/', '_')}.log" for s in stages]
        record = self.run_dir / "jobs" / f"{stages[0].addressing.replace('/', '_')}.json"
        return Chain(stages=stages, logs=logs, record=record)

    def needs_only(self, stage, stages: list) -> bool:
        """Whether ``stage`` is undecided and every stage it needs is settled or one of ``stages``."""
        return self.state[stage] == "undecided" and all(
            self.state[u] in SETTLED for u in self.upstream[stage] if u not in stages
        )

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
