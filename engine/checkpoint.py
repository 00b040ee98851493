"""Checkpoints: two kinds in one format, written atomically, read with ``torch.load(weights_only=True)``.

- ``best.pt`` (kind ``"model"``): what evaluation and prediction need and nothing else -- the fp32
  ``state_dict`` of the uncompiled model, the training ``config``, the ``epoch`` it comes from (1-based)
  and ``best_val_dice`` (percent; None without a validation split).
- ``resume.pt`` (kind ``"resume"``): everything needed to continue an unfinished run bit for bit --
  model, optimiser, scheduler, gradient scaler, RNG states, the epoch log, the best-so-far bookkeeping
  and the ``fingerprint`` of the settings it was trained with. A finished run deletes it.

Both carry ``format`` (:data:`CHECKPOINT_FORMAT`) and ``kind``. Checkpoints of the previous format
(``dyglbench-checkpoint-v1``: a full training state under ``last.pt``/``best.pt``) still load as models.
torch is imported inside the functions, so that importing this module (``CheckpointError``) is cheap.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError
from core.fsutil import atomic_open

if TYPE_CHECKING:
    import torch

    from engine.params import TrainConfig

CHECKPOINT_FORMAT = "dyglbench-checkpoint-v2"
LEGACY_FORMATS = ("dyglbench-checkpoint-v1",)  # full training states; readable as models
KINDS = ("model", "resume")


class CheckpointError(UserError):
    """A checkpoint file that is missing, truncated, not one of ours, or does not fit what it is used for."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], kind: str = "model") -> None:
    """Atomically save ``state`` with the format marker and ``kind`` (``"model"`` or ``"resume"``)."""
    import torch

    if kind not in KINDS:
        raise ValueError(f"checkpoint kind must be one of {KINDS}, got {kind!r}")
    with atomic_open(path) as fh:
        torch.save({"format": CHECKPOINT_FORMAT, "kind": kind, **state}, fh)


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", kind: str | None = None
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    ``kind``: require a ``"model"`` or ``"resume"`` checkpoint (None accepts both). Raises
    :class:`CheckpointError` naming the file when it is missing, truncated, foreign or of the wrong kind.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for truncated or non-torch files
        detail = " ".join(str(err).split())[:200]
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {detail}") from err
    fmt = state.get("format") if isinstance(state, dict) else None
    if fmt not in (CHECKPOINT_FORMAT, *LEGACY_FORMATS):
        raise CheckpointError(
            f"{path}: not a dyglbench checkpoint (expected a dict with format={CHECKPOINT_FORMAT!r}); "
            "weights from elsewhere can be loaded with torch.load and load_state_dict"
        )
    found = state.get("kind", "resume")  # v1 checkpoints were full training states
    if kind is not None and found != kind and not (kind == "model" and "model" in state):
        raise CheckpointError(f"{path}: a {found} checkpoint, expected a {kind} checkpoint")
    if kind == "resume" and fmt != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: written by an older version ({fmt}); it cannot be resumed")
    return state


def non_finite_tensors(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold NaN or infinity."""
    import torch

    return [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU, fp32, contiguous copy of ``model``'s state dict (the module itself, never a compiled or
    DistributedDataParallel wrapper: no ``_orig_mod.``/``module.`` prefixes). A tensor the state dict lists under
    several names (a module registered twice, e.g. nnU-Net's ``conv`` and ``all_modules.0``) is copied once and
    shared, so that ``torch.save`` writes it once."""
    state, copies = {}, {}
    for key, value in model.state_dict().items():
        same = (value.data_ptr(), value.dtype, tuple(value.shape), tuple(value.stride()))
        if same not in copies:
            copy = value.detach().to("cpu", copy=True)
            copies[same] = (copy.float() if copy.is_floating_point() else copy).contiguous()
        state[key] = copies[same]
    return state


def state_dict_mismatch(expected: dict[str, Any], found: dict[str, Any]) -> str:
    """One line describing how two state dicts differ in keys or shapes; empty when they fit."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [
        f"{k} {tuple(found[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in found and tuple(found[k].shape) != tuple(v.shape)
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes)):
        if items:
            parts.append(f"{len(items)} tensor(s) {label} (e.g. {items[0]})")
    return "; ".join(parts)


def save_best(path: Path, weights: dict, cfg: TrainConfig, best: dict) -> None:
    """best.pt: what evaluation and prediction need, and nothing else."""
    best_dice = None if best["val_dice"] == -math.inf else round(best["val_dice"], 4)  # percent
    state = {"model": weights, "config": cfg.model_dump(), "epoch": best["epoch"], "best_val_dice": best_dice}
    save_checkpoint(path, state, kind="model")
