"""The grid's DVC side (:class:`Workspace`): the plan of stages in ``dvc repro``'s order, which are out of date,
outputs removed or restored from the run cache, and journalled commits to dvc.lock. Every DVC call goes through
:mod:`pipeline.grid.dvc_adapter`.

Only the coordinating process writes dvc.lock: when a job finishes, its successful stages are committed one job at
a time (``dvc commit -f``) under DVC's repository lock. DVC rewrites dvc.lock in place, so each commit is journalled
first (a copy of dvc.lock and the stage names under ``.dvc/tmp/grid/``): a grid killed during a commit is rolled
back and the commit redone by the next run.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.fsutil import atomic_write_text
from pipeline.grid.dvc_adapter import DvcError, DvcLockBusy, DvcProject, NotDvcProject, StageInfo
from pipeline.grid.states import CACHED, FAILED, GridError

if TYPE_CHECKING:
    from pipeline.grid.scheduler import Chain


def matches(name: str, pattern: str) -> bool:
    """A stage name matches a target as ``dvc repro`` targets do: exactly, by group (``train`` covers
    ``train@...``), or as a glob (``train@kvasir-*``)."""
    return name == pattern or name.split("@", 1)[0] == pattern or fnmatch.fnmatchcase(name, pattern)


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


@dataclass
class Plan:
    """The stages a grid run considers, in ``dvc repro``'s order, and where each stands. The coordinator makes
    it once (:meth:`Workspace.load_plan`) and hands it to the scheduler, the job lifecycle and the monitor: the
    scheduler settles stages, the lifecycle records how jobs ended, the monitor reports ``state``."""

    steps: list[StageInfo]
    upstream: dict[StageInfo, list[StageInfo]]  # the planned stages each one needs
    downstream: dict[StageInfo, list[StageInfo]]  # the planned stages that need it
    excluded: list[str] = field(default_factory=list)  # names left to `dvc repro` (grid.exclude)
    made: list[Path] = field(default_factory=list)  # every output of every stage of the project
    state: dict[StageInfo, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state = self.state or dict.fromkeys(self.steps, "undecided")


class Workspace:
    """The DVC project the grid works in (through :class:`DvcProject`) and the journal of its commits."""

    def __init__(self, root: Path, grid_dir: Path, say: Callable[[str], None]) -> None:
        try:
            self.dvc = DvcProject(root)
        except NotDvcProject as err:
            raise GridError(f"{root}: not a DVC project ({err})") from err
        self.root, self.say = root, say
        self.journal = Journal(root, grid_dir)

    def close(self) -> None:
        self.dvc.close()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """DVC's repository lock, waited for a while (a `dvc status` in another terminal holds it briefly)."""
        try:
            with self.dvc.locked():
                yield
        except DvcLockBusy:
            raise GridError("another DVC process holds the repository lock; try again") from None

    def load_plan(self, targets: list[str], exclude: list[str]) -> Plan:
        """The stages to consider, in the order `dvc repro` would visit them, and their dependencies."""
        try:
            with self.locked():
                graph = self.dvc.stage_graph()
        except DvcError as err:
            raise GridError(f"{self.root}: DVC cannot read the pipeline: {err}") from err
        if targets:
            chosen: list[StageInfo] = []
            for target in targets:
                hits = [s for s in graph.stages if matches(s.name, target)]
                if not hits:
                    raise GridError(f"target {target!r} matches no stage of dvc.yaml (see `dvc stage list`)")
                chosen.extend(h for h in hits if h not in chosen)
            steps = self.dvc.plan(chosen)
        else:  # like `dvc repro` without targets: the stages of ./dvc.yaml and what they need
            own = [s for s in graph.stages if s.dvcfile == self.root / "dvc.yaml"]
            steps = self.dvc.plan(own if own else None)
        excluded = [s for s in steps if any(matches(s.name, p) for p in exclude)]
        kept = [s for s in steps if s not in excluded]
        kept_set = set(kept)
        needed_by: dict[StageInfo, list[StageInfo]] = {s: [] for s in kept}
        for s in kept:
            for u in graph.needs[s]:
                if u in kept_set:
                    needed_by[u].append(s)
        return Plan(
            steps=kept,
            upstream={s: [u for u in graph.needs[s] if u in kept_set] for s in kept},
            downstream=needed_by,
            excluded=[s.name for s in excluded],
            made=[out for s in graph.stages for out in s.outs],
        )

    def missing_sources(self, plan: Plan) -> list[str]:
        """``stage: path`` for each dependency of the planned stages that does not exist and that no stage makes
        (a dataset not downloaded yet, a typo in a ``datasets.<name>.raw`` folder): neither a stage's output, nor in
        one, nor a folder that will hold some."""
        missing = []
        for stage in plan.steps:
            for path in stage.deps:
                if path.exists() or any(path == m or m in path.parents or path in m.parents for m in plan.made):
                    continue
                shown = path.relative_to(self.root) if path.is_relative_to(self.root) else path
                missing.append(f"{stage.name}: {shown}")
        return missing

    def changed(self, stage: StageInfo) -> bool:
        """Whether ``dvc repro`` would run the stage; call under :meth:`locked`. A DvcError when DVC cannot tell."""
        return self.dvc.changed(stage)

    def commit(self, names: list[str]) -> dict[str, str]:
        """Record stages in dvc.lock (``dvc commit -f``), journalled; returns {name: error} of failures."""
        errors: dict[str, str] = {}
        with self.locked():
            self.journal.begin(names)
            for name in names:
                if errors:  # a later stage of a chain needs the earlier one recorded
                    errors[name] = "not recorded: an earlier stage of its job failed to commit"
                    continue
                try:
                    self.dvc.commit(name)
                except DvcError as err:
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

    def prepare_outputs(self, chain: Chain, plan: Plan) -> bool:
        """Remove the chain's outputs as `dvc repro` does; True when the head was restored from the run
        cache instead (then the rest of the chain is decided again)."""
        head = chain.stages[0]
        with self.locked():
            self.dvc.remove_outs(head)
            if not self.dvc.restore_from_run_cache(head):  # no run recorded, or it cannot be checked
                for stage in chain.stages[1:]:
                    self.dvc.remove_outs(stage)
                return False
        errors = self.commit([head.name])
        plan.state[head] = FAILED if errors else CACHED
        for s in chain.stages[1:]:
            plan.state[s] = "undecided"
        chain.stages, chain.logs, chain.status, chain.where = [head], chain.logs[:1], CACHED, "run cache"
        self.say(f"cached  {head.name} (restored from DVC's run cache)")
        return True
