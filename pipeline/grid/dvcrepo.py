"""The grid's DVC adapter: the stage graph in ``dvc repro``'s order, ``Stage.changed()``, DVC's repository lock,
outputs removed or restored from the run cache, and journalled commits to dvc.lock.

Only the coordinating process writes dvc.lock: when a job finishes, its successful stages are committed one job at
a time (``Repo.commit(stage, force=True)``, i.e. ``dvc commit -f``) under DVC's repository lock. DVC rewrites
dvc.lock in place, so each commit is journalled first (a copy of dvc.lock and the stage names under
``.dvc/tmp/grid/``): a grid killed during a commit is rolled back and the commit redone by the next run.
"""

from __future__ import annotations

import fnmatch
import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.fsutil import atomic_write_text
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


def lost_epochs_of(stages: list[Any], since: float) -> int:
    """Epochs a training lost to interruptions after ``since`` (the ``resumed`` list of its ``train.json``)."""
    lost = 0
    for stage in stages:
        for out in stage.outs:
            path = Path(str(getattr(out, "fs_path", "") or ""))
            if path.name != "train.json" or not path.is_file():
                continue
            try:
                resumed = json.loads(path.read_text(encoding="utf-8")).get("resumed") or []
                lost += sum(int(r["lost_epochs"]) for r in resumed if float(r["time"]) >= since)
            except (OSError, ValueError, AttributeError, KeyError, TypeError):
                continue
    return lost


class DvcAccess:
    """The coordinator's DVC side (a part of :class:`pipeline.grid.coordinator.Grid`): uses ``self.repo``,
    ``self.root``, ``self.targets``, ``self.settings``, ``self.journal`` and ``self.state``; sets the plan
    (``self.graph``, ``self.steps``, ``self.upstream``, ``self.downstream``, ``self.excluded``)."""

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

    def missing_sources(self) -> list[str]:
        """``stage: path`` for each dependency of the planned stages that does not exist and that no stage makes
        (a dataset not downloaded yet, a typo in a ``datasets.<name>.raw`` folder): neither a stage's output, nor in
        one, nor a folder that will hold some."""
        made = [Path(str(out.fs_path)) for stage in self.graph.nodes for out in stage.outs]
        missing = []
        for stage in self.steps:
            for dep in stage.deps:
                path = Path(str(getattr(dep, "fs_path", "") or ""))
                if (
                    not str(path)
                    or path.exists()
                    or any(path == m or m in path.parents or path in m.parents for m in made)
                ):
                    continue
                shown = path.relative_to(self.root) if path.is_relative_to(self.root) else path
                missing.append(f"{stage.addressing}: {shown}")
        return missing

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

    def prepare_outputs(self, chain: Chain) -> bool:
        """Remove the chain's outputs as `dvc repro` does; True when the head was restored from the run
        cache instead (then the rest of the chain is decided again)."""
        from dvc.exceptions import DvcException
        from dvc.stage.cache import RunCacheNotFoundError

        head = chain.stages[0]
        with self.dvc_locked():
            head.remove_outs(ignore_remove=False, force=False)
            try:
                self.repo.stage_cache.restore(head)
            except (RunCacheNotFoundError, DvcException, OSError):  # no run recorded, or it cannot be checked
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
