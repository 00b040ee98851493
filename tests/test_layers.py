"""The layers of pyproject.toml's import-linter contracts hold, and an upward import breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.paths import FIRST_PARTY

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
MAX_MODULE_LINES = 600


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True, text=True)


@pytest.fixture
def tree(tmp_path) -> Path:
    """A copy of the first-party packages and pyproject.toml."""
    for package in FIRST_PARTY:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "paper"))
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_hold_and_an_upward_import_breaks_them(tree):
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    params = tree / "engine" / "params.py"
    params.write_text(params.read_text() + "\n\ndef _upward():\n    import reports.assemble  # noqa: F401\n")
    result = _lint(tree)
    assert result.returncode == 1
    assert "engine.params -> reports.assemble" in result.stdout


def test_a_stage_importing_another_stage_breaks_the_contract(tree):
    evaluate = tree / "pipeline" / "evaluate.py"
    evaluate.write_text(evaluate.read_text() + "\n\ndef _sideways():\n    import pipeline.train  # noqa: F401\n")
    result = _lint(tree)
    assert result.returncode == 1 and "pipeline.evaluate -> pipeline.train" in result.stdout


def test_no_module_is_longer_than_the_limit():
    long = {}
    for package in FIRST_PARTY:
        for path in (REPO / package).rglob("*.py"):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_MODULE_LINES:
                long[str(path.relative_to(REPO))] = lines
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
