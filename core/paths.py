"""Where the repository is, and which top-level packages are its own."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# first-party import roots, bottom layer first (pyproject.toml's import-linter contract orders them)
FIRST_PARTY = ("core", "datasets", "models", "baselines", "engine", "reports", "pipeline")
