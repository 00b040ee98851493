"""What the grid calls each stage's state, its error type and where it keeps its files."""

from __future__ import annotations

from pathlib import Path

from core.errors import UserError

GRID_DIR = Path(".dvc") / "tmp" / "grid"  # DVC git-ignores .dvc/tmp
KEEP_RUNS = 5  # run folders (submitit files and stage logs) kept under GRID_DIR/runs
SLURM_DEFAULT_JOBS = 16

DONE, CACHED, UPTODATE = "done", "cached", "up to date"
FAILED, BLOCKED, CANCELLED = "failed", "blocked", "cancelled"
SETTLED = {DONE, CACHED, UPTODATE}
NOT_RUN = {FAILED, BLOCKED, CANCELLED}


class GridError(UserError):
    """The grid cannot start: not a DVC project, another grid running, an unknown target."""
