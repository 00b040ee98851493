"""Sharing runs through a DVC remote (docs/how-to/dvc-remote.md): after a run, ``dvc push`` to a
local-directory remote; a fresh ``git clone`` runs ``dvc pull``, and then ``dvc status`` is clean, ``dvc repro``
reruns nothing, and a changed report rebuilds from the pulled runs without training again.

The pipeline is a tiny stand-in with the project's shape: synthesize -> train (cached checkpoint) -> report
(uncached, committed to git), plus a prepare stage that reads a raw folder outside DVC (as the paper profile's
``data/raw/<name>`` folders are), which a clone does not have.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DVC = str(Path(sys.executable).with_name("dvc"))

pytestmark = pytest.mark.slow

DVC_YAML = """\
stages:
  synthesize:
    cmd: python synth.py
    deps: [synth.py]
    outs: [data/raw/synthetic]
  train:
    cmd: python train.py
    deps: [train.py, data/raw/synthetic]
    outs: [runs/best.pt]
  report:
    cmd: python report.py
    deps: [report.py, runs/best.pt]
    outs:
      - output/report.md:
          cache: false
"""
SYNTH = """\
import pathlib
out = pathlib.Path("data/raw/synthetic")
out.mkdir(parents=True, exist_ok=True)
(out / "a.png").write_text("pixels")
"""
PREP = """\
import pathlib
out = pathlib.Path("data/prepared/kvasir")
out.mkdir(parents=True, exist_ok=True)
(out / "n.txt").write_text(pathlib.Path("data/raw/kvasir/list.txt").read_text())
"""
TRAIN = """\
import os, pathlib
pathlib.Path("runs").mkdir(exist_ok=True)
pathlib.Path("runs/best.pt").write_bytes(b"weights" * 1000)
with open(os.environ["TRAIN_LOG"], "a") as fh:  # outside the repository: counts the trainings
    fh.write("trained\\n")
"""
REPORT = """\
import pathlib
pathlib.Path("output").mkdir(exist_ok=True)
size = len(pathlib.Path("runs/best.pt").read_bytes())
pathlib.Path("output/report.md").write_text(f"checkpoint: {size} bytes\\n")
"""
EXTERNAL = """\
  prepare:
    cmd: python prep.py
    deps: [prep.py, data/raw/kvasir]
    outs: [data/prepared/kvasir]
"""


def _run(cmd: list[str], cwd: Path, env: dict, ok: bool = True) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if ok:
        assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture
def env(tmp_path) -> dict:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "TRAIN_LOG": str(tmp_path / "train.log"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }


def _project(work: Path, env: dict, external: bool = False) -> None:
    work.mkdir()
    (work / "dvc.yaml").write_text(DVC_YAML + (EXTERNAL if external else ""))
    (work / "synth.py").write_text(SYNTH)
    (work / "prep.py").write_text(PREP)
    (work / "train.py").write_text(TRAIN)
    (work / "report.py").write_text(REPORT)
    if external:  # a raw dataset folder as `python -m datasets fetch` leaves it: not in git, not in DVC
        (work / "data" / "raw" / "kvasir").mkdir(parents=True)
        (work / "data" / "raw" / "kvasir" / "list.txt").write_text("1000 pairs\n")
        (work / ".gitignore").write_text("/data/raw/kvasir/\n")
    _run(["git", "init", "-q"], work, env)
    _run([DVC, "init", "-q"], work, env)
    _run([DVC, "config", "core.analytics", "false"], work, env)
    _run([DVC, "repro", "-q"], work, env)
    _run(["git", "add", "-A"], work, env)
    _run(["git", "commit", "-qm", "a run"], work, env)


def test_push_fresh_clone_pull_status_clean_repro_reruns_nothing(tmp_path, env):
    work, clone, remote = tmp_path / "work", tmp_path / "clone", tmp_path / "remote"
    _project(work, env)
    _run([DVC, "remote", "add", "-d", "local", str(remote)], work, env)
    _run(["git", "commit", "-qam", "DVC remote"], work, env)
    assert "files pushed" in _run([DVC, "push"], work, env)

    _run(["git", "clone", "-q", str(work), str(clone)], tmp_path, env)
    assert not (clone / "runs" / "best.pt").exists() and (clone / "output" / "report.md").exists()
    assert "files fetched" in _run([DVC, "pull"], clone, env)
    assert (clone / "runs" / "best.pt").read_bytes() == (work / "runs" / "best.pt").read_bytes()
    assert _run([DVC, "status"], clone, env).strip() == "Data and pipelines are up to date."
    repro = _run([DVC, "repro"], clone, env)
    assert "Running stage" not in repro and repro.count("didn't change, skipping") == 3, repro
    assert (tmp_path / "train.log").read_text() == "trained\n"  # the first run's training, and no other

    # a reviewer changes the report: it is rebuilt from the pulled checkpoint, nothing is trained
    report = clone / "report.py"
    report.write_text(report.read_text().replace("checkpoint:", "pulled checkpoint:"))
    repro = _run([DVC, "repro"], clone, env)
    assert "Running stage 'report'" in repro and "Running stage 'train'" not in repro, repro
    assert (clone / "output" / "report.md").read_text() == "pulled checkpoint: 7000 bytes\n"
    assert (tmp_path / "train.log").read_text() == "trained\n"


def test_a_clone_without_the_raw_datasets_reruns_nothing_with_allow_missing(tmp_path, env):
    work, clone = tmp_path / "work", tmp_path / "clone"
    _project(work, env, external=True)
    _run([DVC, "remote", "add", "-d", "local", str(tmp_path / "remote")], work, env)
    _run(["git", "commit", "-qam", "DVC remote"], work, env)
    _run([DVC, "push"], work, env)
    _run(["git", "clone", "-q", str(work), str(clone)], tmp_path, env)
    _run([DVC, "pull"], clone, env)
    status = _run([DVC, "status"], clone, env)
    assert "prepare:" in status and "deleted:            data/raw/kvasir" in status, status
    repro = _run([DVC, "repro", "--allow-missing"], clone, env)
    assert "Running stage" not in repro and "Data and pipelines are up to date." in repro, repro
    assert (tmp_path / "train.log").read_text() == "trained\n"
