"""The one module that uses DVC's Python API: one function or method per operation the grid needs.

DVC's Python internals are not a stable API, so everything the grid takes from them passes through here (an
import-linter contract in pyproject.toml forbids ``dvc`` anywhere else in the project's packages), and
pyproject.toml pins DVC to :data:`TESTED_RANGE`, the releases these operations were checked against:
``tests/test_dvc_contract.py`` runs each operation on a tiny DVC project and names the DVC function that changed
when one fails; CI runs it with the installed DVC and again with the lowest release of the range
(``make test-dvc-min``).

Stages leave this module as :class:`StageInfo` (plain data: name, commands, folders, paths); the DVC stage
objects stay inside :class:`DvcProject`, which the grid asks by stage name.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The DVC releases the operations below were tested with; pyproject.toml's requirement says the same (a test
# checks). The lowest: the first release with plan_repro and the one-argument get_active_graph (3.6.0).
TESTED_RANGE = ">=3.6,<3.68"
LOWEST_TESTED = "3.6.0"


class DvcError(Exception):
    """A DVC operation failed; the message is DVC's."""


class NotDvcProject(DvcError):
    """The folder is not inside a DVC project."""


class DvcLockBusy(DvcError):
    """Another DVC process kept the repository lock for longer than the grid waits."""


@dataclass(frozen=True)
class StageInfo:
    """A stage of the pipeline as the grid sees it; equal (and hashed) by name."""

    name: str  # DVC's addressing: train@kvasir-unet-42 (path/dvc.yaml:name for another dvc.yaml)
    cmds: tuple[str, ...] = field(default=(), compare=False)  # empty: a data source (dvc add) or an import
    wdir: str = field(default=".", compare=False)
    dvcfile: Path = field(default=Path("dvc.yaml"), compare=False)
    deps: tuple[Path, ...] = field(default=(), compare=False)  # file and folder dependencies (params files too)
    outs: tuple[Path, ...] = field(default=(), compare=False)


def dvc_version() -> str:
    """The installed DVC's version."""
    from dvc.version import __version__

    return __version__


def find_root(start: str | os.PathLike | None = None) -> Path:
    """The root of the DVC project that holds ``start`` (default: the working directory)."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Path(Repo.find_root(None if start is None else str(start)))
    except NotDvcRepoError as err:
        raise NotDvcProject(str(err)) from err


def _paths(items: Any) -> tuple[Path, ...]:
    return tuple(Path(str(i.fs_path)) for i in items if getattr(i, "fs_path", None))


def _info(stage: Any) -> StageInfo:
    cmd = stage.cmd or ()
    return StageInfo(
        name=stage.addressing,
        cmds=tuple(cmd if isinstance(cmd, list) else cmd.splitlines()),
        wdir=str(stage.wdir),
        dvcfile=Path(stage.path),
        deps=_paths(stage.deps),
        outs=_paths(stage.outs),
    )


@dataclass
class StageGraph:
    """The pipeline as ``dvc repro`` walks it: its stages and, for each, the stages it needs (frozen stages
    need none)."""

    stages: list[StageInfo]
    needs: dict[StageInfo, list[StageInfo]]


class DvcProject:
    """An open DVC project: its stage graph, each stage's state and outputs, its lock and dvc.lock."""

    def __init__(self, root: str | os.PathLike) -> None:
        from dvc.exceptions import NotDvcRepoError
        from dvc.repo import Repo

        logging.getLogger("dvc").setLevel(logging.WARNING)  # "Updating lock file" x 2 per commit
        self.root = Path(root).resolve()
        try:
            self._repo = Repo(str(self.root))
        except NotDvcRepoError as err:
            raise NotDvcProject(str(err)) from err
        self._graph: Any = None
        self._stages: dict[str, Any] = {}

    def close(self) -> None:
        self._repo.close()

    @contextmanager
    def locked(self, patience_s: float = 300.0) -> Iterator[None]:
        """DVC's repository lock (``dvc.repo.lock_repo``), retried for ``patience_s`` while another DVC process
        (a ``dvc status`` in another terminal) holds it."""
        from dvc.lock import LockError
        from dvc.repo import lock_repo

        deadline = time.monotonic() + patience_s
        while True:
            try:
                ctx = lock_repo(self._repo)
                ctx.__enter__()
                break
            except LockError as err:
                if time.monotonic() > deadline:
                    raise DvcLockBusy(str(err)) from None
                time.sleep(1.0)
        try:
            yield
        finally:
            ctx.__exit__(None, None, None)

    def stage_graph(self) -> StageGraph:
        """Every stage and what it needs (``dvc.repo.reproduce.get_active_graph`` of ``Repo.index.graph``: frozen
        stages are cut from their dependencies). Call under :meth:`locked`."""
        from dvc.exceptions import DvcException
        from dvc.repo.reproduce import get_active_graph

        try:
            graph = get_active_graph(self._repo.index.graph)
        except DvcException as err:
            raise DvcError(str(err)) from err
        self._graph = graph
        self._stages = {s.addressing: s for s in graph.nodes}
        infos = {s: _info(s) for s in graph.nodes}
        # networkx edges point from a stage to the stages it depends on
        needs = {infos[s]: [infos[u] for u in graph.successors(s)] for s in graph.nodes}
        return StageGraph(stages=list(infos.values()), needs=needs)

    def plan(self, targets: list[StageInfo] | None = None) -> list[StageInfo]:
        """The stages ``dvc repro`` visits for ``targets`` (all stages when None), in its order: each stage after
        the stages it needs (``dvc.repo.reproduce.plan_repro``)."""
        from dvc.repo.reproduce import plan_repro

        graph = self._loaded()
        nodes = [self._stages[t.name] for t in targets] if targets is not None else None
        return [_info(s) for s in plan_repro(graph, nodes)]

    def changed(self, stage: StageInfo) -> bool:
        """Whether ``dvc repro`` would run the stage (``Stage.changed(upstream=...)``: its command, dependencies
        or outputs differ from dvc.lock). Call under :meth:`locked`."""
        from dvc.exceptions import DvcException

        graph = self._loaded()
        node = self._stages[stage.name]
        try:
            return bool(node.changed(upstream=list(graph.successors(node))))
        except DvcException as err:
            raise DvcError(str(err)) from err

    def remove_outs(self, stage: StageInfo) -> None:
        """Delete the stage's outputs as ``dvc repro`` does before running it (``Stage.remove_outs``; outputs
        marked ``persist`` are kept). Call under :meth:`locked`."""
        from dvc.exceptions import DvcException

        try:
            self._stages[stage.name].remove_outs(ignore_remove=False, force=False)
        except DvcException as err:
            raise DvcError(str(err)) from err

    def restore_from_run_cache(self, stage: StageInfo) -> bool:
        """Put back the outputs of an identical earlier run from DVC's run cache (``Repo.stage_cache.restore``);
        False when none is recorded or it cannot be checked (``RunCacheNotFoundError``). Call under
        :meth:`locked`."""
        from dvc.exceptions import DvcException
        from dvc.stage.cache import RunCacheNotFoundError

        try:
            self._repo.stage_cache.restore(self._stages[stage.name])
        except (RunCacheNotFoundError, DvcException, OSError):
            return False
        return True

    def commit(self, name: str) -> None:
        """Record the stage's dependencies and outputs in dvc.lock, as ``dvc commit -f NAME``
        (``Repo.commit(name, force=True)``). Call under :meth:`locked`."""
        from dvc.exceptions import DvcException

        try:
            self._repo.commit(name, force=True)
        except DvcException as err:
            raise DvcError(str(err)) from err

    def _loaded(self) -> Any:
        if self._graph is None:
            raise RuntimeError("DvcProject.stage_graph() first")
        return self._graph


def output_paths(root: str | os.PathLike) -> list[Path]:
    """Every output of every stage of the project at ``root`` (``Repo.index.stages``)."""
    from dvc.repo import Repo

    cwd = os.getcwd()
    os.chdir(root)  # DVC resolves stage paths against the working directory
    try:
        with Repo(str(root)) as repo:
            return [Path(str(out.fs_path)) for stage in repo.index.stages for out in stage.outs]
    finally:
        os.chdir(cwd)
