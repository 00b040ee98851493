"""Contract tests of the DVC internals the grid uses, one per API, each on a tiny DVC project.

Every use of DVC's Python API is in pipeline/grid/dvc_adapter.py; these tests call its operations and check what
the grid relies on (the call, its arguments, the shape of the answer). A failure names the DVC API that changed
and the range dyglbench is tested with. CI runs them with the installed DVC and with the lowest DVC of the range
(``make test-dvc-min``).
"""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from pipeline.grid.dvc_adapter import (
    LOWEST_TESTED,
    TESTED_RANGE,
    DvcLockBusy,
    DvcProject,
    NotDvcProject,
    dvc_version,
    find_root,
    output_paths,
)

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def api(name: str):
    """Turn any failure inside into one naming the DVC API and the tested range."""
    try:
        yield
    except (Exception, AssertionError) as err:  # noqa: BLE001 - whatever broke, the message names the API
        pytest.fail(
            f"{name} changed: dyglbench is tested with dvc{TESTED_RANGE} (installed: dvc {dvc_version()}); "
            f"pipeline/grid/dvc_adapter.py needs updating ({type(err).__name__}: {err})"
        )


STAGES = {
    "a": {"cmd": "cp src.txt a.txt", "deps": ["src.txt"], "outs": ["a.txt"]},
    "b": {"cmd": ["cp a.txt b.txt", "echo done"], "deps": ["a.txt"], "outs": ["b.txt"]},
    "other": {"cmd": "cp src.txt o.txt", "deps": ["src.txt"], "outs": ["o.txt"]},
}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A git + DVC project with stages a -> b and other; the working directory is its root."""
    from dvc.repo import Repo

    root = tmp_path / "p"
    root.mkdir()
    (root / "src.txt").write_text("source\n")
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": STAGES}, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    Repo.init(str(root)).close()
    monkeypatch.chdir(root)
    return root


def opened(root: Path) -> tuple[DvcProject, dict]:
    dvc = DvcProject(root)
    with dvc.locked():
        graph = dvc.stage_graph()
    return dvc, {s.name: s for s in graph.stages}


def run_stage(dvc: DvcProject, stage) -> None:
    """What a job does for stage a or other (copy src.txt), then what the grid does: commit."""
    target = stage.outs[0]
    target.write_text((target.parent / "src.txt").read_text())
    with dvc.locked():
        dvc.commit(stage.name)


def test_pyproject_pins_the_tested_range_and_the_installed_dvc_is_in_it():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    dvc = next(Requirement(d) for d in deps if Requirement(d).name == "dvc")
    assert str(dvc.specifier) == str(Requirement(f"dvc{TESTED_RANGE}").specifier), (dvc, TESTED_RANGE)
    assert Version(LOWEST_TESTED) in dvc.specifier
    assert f"dvc=={LOWEST_TESTED}" in (ROOT / ".ci" / "dvc-min.txt").read_text().split()
    assert Version(dvc_version()) in dvc.specifier, f"dvc {dvc_version()} is outside the tested dvc{TESTED_RANGE}"


def test_repo_opens_finds_its_root_and_reads_the_stages(project, tmp_path):
    with api("dvc.repo.Repo (Repo.find_root, Repo(root), Repo.index.graph, Stage attributes)"):
        (project / "sub").mkdir()
        assert find_root(project / "sub") == project
        with pytest.raises(NotDvcProject):
            find_root(tmp_path)
        with pytest.raises(NotDvcProject):
            DvcProject(tmp_path)
        dvc, stages = opened(project)
        assert set(stages) == {"a", "b", "other"}
        a, b = stages["a"], stages["b"]
        assert a.cmds == ("cp src.txt a.txt",) and b.cmds == ("cp a.txt b.txt", "echo done")
        assert Path(a.wdir) == project and a.dvcfile == project / "dvc.yaml"
        assert a.deps == (project / "src.txt",) and a.outs == (project / "a.txt",)
        dvc.close()


def test_get_active_graph_gives_each_stage_what_it_needs_and_cuts_frozen_ones(project):
    with api("dvc.repo.reproduce.get_active_graph"):
        dvc = DvcProject(project)
        with dvc.locked():
            graph = dvc.stage_graph()
        needs = {s.name: [u.name for u in ups] for s, ups in graph.needs.items()}
        assert needs == {"a": [], "b": ["a"], "other": []}
        dvc.close()
        frozen = {**STAGES, "b": {**STAGES["b"], "frozen": True}}
        (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": frozen}, sort_keys=False))
        dvc = DvcProject(project)
        with dvc.locked():
            graph = dvc.stage_graph()
        assert {s.name: [u.name for u in ups] for s, ups in graph.needs.items()}["b"] == []
        dvc.close()


def test_plan_repro_orders_each_stage_after_what_it_needs_and_only_what_targets_need(project):
    with api("dvc.repo.reproduce.plan_repro"):
        dvc, stages = opened(project)
        assert [s.name for s in dvc.plan([stages["b"]])] == ["a", "b"]
        everything = [s.name for s in dvc.plan(None)]
        assert sorted(everything) == ["a", "b", "other"] and everything.index("a") < everything.index("b")
        assert sorted(s.name for s in dvc.plan([stages["other"], stages["a"]])) == ["a", "other"]
        dvc.close()


def test_lock_repo_excludes_a_second_holder_until_released(project):
    with api("dvc.repo.lock_repo / dvc.lock.LockError"):
        first, second = DvcProject(project), DvcProject(project)
        with first.locked():
            with pytest.raises(DvcLockBusy):
                with second.locked(patience_s=0):
                    pass
        with second.locked(patience_s=0):
            pass
        first.close()
        second.close()


def test_stage_changed_compares_with_dvc_lock_and_upstream(project):
    with api("dvc.stage.Stage.changed(upstream=...)"):
        dvc, stages = opened(project)
        a, b = stages["a"], stages["b"]
        with dvc.locked():
            assert dvc.changed(a) is True  # never run
            assert dvc.changed(b) is True
        run_stage(dvc, a)
        (project / "b.txt").write_text("source\n")
        with dvc.locked():
            dvc.commit("b")
        dvc.close()
        dvc, stages = opened(project)  # the grid reads the graph once, with dvc.lock as it is then
        with dvc.locked():
            assert dvc.changed(stages["a"]) is False and dvc.changed(stages["b"]) is False
        (project / "a.txt").write_text("another output\n")  # what rerunning a with another result leaves
        with dvc.locked():
            assert dvc.changed(stages["b"]) is True  # its dependency differs from what dvc.lock recorded
        (project / "src.txt").write_text("new source\n")
        with dvc.locked():
            assert dvc.changed(stages["a"]) is True
        dvc.close()


def test_remove_outs_deletes_the_outputs(project):
    with api("dvc.stage.Stage.remove_outs(ignore_remove=False, force=False)"):
        dvc, stages = opened(project)
        (project / "a.txt").write_text("old\n")
        with dvc.locked():
            dvc.remove_outs(stages["a"])
        assert not (project / "a.txt").exists()
        dvc.close()


def test_commit_records_the_stage_in_dvc_lock(project):
    with api("dvc.repo.Repo.commit(name, force=True)"):
        dvc, stages = opened(project)
        run_stage(dvc, stages["a"])
        lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
        assert list(lock) == ["a"] and lock["a"]["outs"][0]["path"] == "a.txt" and "md5" in lock["a"]["outs"][0]
        dvc.close()


def test_run_cache_restores_an_identical_run_and_says_when_there_is_none(project):
    with api("dvc.repo.Repo.stage_cache.restore / dvc.stage.cache.RunCacheNotFoundError"):
        dvc, stages = opened(project)
        a = stages["a"]
        with dvc.locked():
            assert dvc.restore_from_run_cache(a) is False  # nothing recorded yet
        run_stage(dvc, a)  # a commit records the run in the run cache too
        (project / "a.txt").unlink()
        with dvc.locked():
            assert dvc.restore_from_run_cache(a) is True
        assert (project / "a.txt").read_text() == "source\n"
        dvc.close()


def test_output_paths_lists_every_output_of_every_stage(project):
    with api("dvc.repo.Repo.index.stages"):
        assert sorted(output_paths(project)) == sorted(project / f for f in ("a.txt", "b.txt", "o.txt"))
