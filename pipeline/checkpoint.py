"""Checkpoints: one format, written atomically, read with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from datasets.fsutil import atomic_open
from models import create_model
from pipeline.cli import UserError

CHECKPOINT_FORMAT = "dyglbench-checkpoint-v1"


class CheckpointError(UserError):
    """A checkpoint file that is missing, truncated, or not one of ours."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Atomically save a training checkpoint (``state`` gains the format marker)."""
    with atomic_open(path) as fh:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, fh)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises :class:`CheckpointError` naming the file when it is missing, truncated or foreign.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for truncated or non-torch files
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {err}") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a dyglbench checkpoint (expected a dict with format={CHECKPOINT_FORMAT!r}); "
            "weights from elsewhere can be loaded with torch.load and load_state_dict"
        )
    return state


def load_model_from_checkpoint(path: str | Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Rebuild the registered model a checkpoint was trained as and load its weights (eval mode)."""
    state = load_checkpoint(path, map_location=device)
    cfg = state["config"]
    model = create_model(cfg["model"], **cfg.get("model_kwargs", {}))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg
