"""What the grid reads from the files of a stage (its outputs and dependencies on disk): test Dice, epochs lost to
interruptions, a training's progress file, the size of its inputs."""

from __future__ import annotations

import json
from pathlib import Path

from engine.progress import PROGRESS_FILE
from pipeline.grid.dvc_adapter import StageInfo


def deps_bytes(stage: StageInfo) -> int:
    """Bytes on disk of a stage's dependencies (a prepared dataset: its size says how long a run takes)."""
    total = 0
    for path in stage.deps:
        files = [path] if path.is_file() else path.rglob("*") if path.is_dir() else []
        total += sum(f.stat().st_size for f in files if f.is_file())
    return total


def dice_of(stages: list[StageInfo]) -> float | None:
    """Test Dice (percent) from a JSON output of ``stages`` with a ``dice.mean`` entry (evaluate's metrics.json)."""
    for stage in reversed(stages):
        for out in stage.outs:
            if out.suffix == ".json":
                try:
                    return float(json.loads(out.read_text(encoding="utf-8"))["dice"]["mean"])
                except (OSError, ValueError, KeyError, TypeError):
                    continue
    return None


def train_json(stage: StageInfo) -> dict | None:
    """The ``train.json`` output of a training stage, when it is in the workspace."""
    for out in stage.outs:
        if out.name == "train.json" and out.is_file():
            try:
                info = json.loads(out.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            return info if isinstance(info, dict) else None
    return None


def lost_epochs_of(stages: list[StageInfo], since: float) -> int:
    """Epochs a training lost to interruptions after ``since`` (the ``resumed`` list of its ``train.json``)."""
    lost = 0
    for stage in stages:
        resumed = (train_json(stage) or {}).get("resumed") or []
        try:
            lost += sum(int(r["lost_epochs"]) for r in resumed if float(r["time"]) >= since)
        except (KeyError, TypeError, ValueError):
            continue
    return lost


def progress_file(stage: StageInfo) -> Path | None:
    """The ``progress.json`` a running training keeps beside its outputs (:mod:`engine.progress`), if any."""
    for folder in dict.fromkeys(out.parent for out in stage.outs):
        if (folder / PROGRESS_FILE).is_file():
            return folder / PROGRESS_FILE
    return None
