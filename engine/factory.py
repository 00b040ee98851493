"""Building a model, the one way: from a registered name (:func:`create_model`, the registry's), from a
``models:`` entry of params.yaml (:func:`model_from_entry`), or from a checkpoint (:func:`model_from_checkpoint`),
and the checks that a model can take a given input size (:func:`check_input_size`, :func:`check_model_runs`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError
from engine.checkpoint import CheckpointError, load_checkpoint, non_finite_tensors, state_dict_mismatch
from engine.runtime import resolve_device
from models.pretrained import architecture_kwargs
from models.registry import ModelArgumentError, UnknownModelError, create_model, model_info

if TYPE_CHECKING:
    import torch

__all__ = [
    "check_input_size",
    "check_model_runs",
    "create_model",
    "device_for",
    "model_from_checkpoint",
    "model_from_entry",
]


def model_from_entry(key: str, builder: str, model_kwargs: dict[str, Any]):
    """``create_model(builder, **model_kwargs)`` for the ``models.<key>`` entry; a keyword the builder does
    not take or a value it refuses (a weight file that is missing or does not fit) is a UserError naming
    the entry."""
    try:
        return create_model(builder, **model_kwargs)
    except (TypeError, ModelArgumentError) as err:
        raise UserError(f"models.{key}.model_kwargs {model_kwargs}: {err}") from err


def model_from_checkpoint(path: str | Path, device: torch.device | str) -> tuple[torch.nn.Module, dict]:
    """Rebuild the registered model a checkpoint was trained as and load its weights: (model in eval mode,
    training config). The config has ``img_size``, ``model`` (the run name) and ``builder``.

    Every way a checkpoint can fail to load is a one-line :class:`CheckpointError` naming the file: missing,
    not ours, non-finite weights, weights that do not fit the model the config names (another model, other
    ``model_kwargs``), a model nobody registered, or no training size in its config. The model's pretrained
    weight files are not read: the weights are in the checkpoint.
    """
    state = load_checkpoint(path, map_location="cpu", kind="model")
    cfg = state.get("config")
    weights = state.get("model")
    if not isinstance(cfg, dict) or not isinstance(weights, dict) or not cfg.get("model"):
        raise CheckpointError(f"{path}: no model weights or training configuration in it")
    img_size = cfg.get("img_size")
    if not isinstance(img_size, int) or img_size < 1:
        raise CheckpointError(f"{path}: its config has no training size (img_size), got {img_size!r}")
    bad = non_finite_tensors(weights)
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} weight tensor(s) hold NaN or infinity (e.g. {bad[0]}); the run that wrote it "
            "diverged, retrain it (lower train.lr?)"
        )
    builder = cfg.get("builder") or cfg["model"]
    kwargs = architecture_kwargs(cfg.get("model_kwargs") or {})
    try:
        model = create_model(builder, **kwargs)
    except UnknownModelError as err:
        raise CheckpointError(f"{path}: the checkpoint names a model that is not registered: {err}") from err
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot build model {builder!r} with model_kwargs {kwargs}: {err}") from err
    problem = state_dict_mismatch(model.state_dict(), weights)
    if problem:
        raise CheckpointError(
            f"{path}: its weights do not fit model {builder!r} with model_kwargs {kwargs} (the config it was "
            f"saved with): {problem}"
        )
    model.load_state_dict(weights)
    return model.to(device).eval(), cfg


def device_for(name: str) -> torch.device:
    """``engine.runtime.resolve_device`` with an unknown device name as a UserError (``--device gpu``)."""
    try:
        return resolve_device(name)
    except RuntimeError as err:
        raise UserError(f"--device {name}: not a device torch knows (auto, cpu, cuda, cuda:N): {err}") from err


def check_input_size(builder: str, img_size: int) -> None:
    """The input sizes the registry records for the model (read from the source; nothing is built)."""
    info = model_info(builder)
    if info.fixed_input_size and img_size != info.fixed_input_size:
        raise UserError(
            f"--img-size {img_size}: {builder} accepts only {info.fixed_input_size} x {info.fixed_input_size} inputs"
        )
    if img_size < info.min_input_size:
        raise UserError(f"--img-size {img_size}: {builder} needs inputs of at least {info.min_input_size} px")


def check_model_runs(model: torch.nn.Module, builder: str, img_size: int, device: torch.device) -> None:
    """The model's size divisor (``size_divisor``), then a forward pass of one blank image at ``img_size`` in
    eval mode (no RNG drawn, no statistics updated): a size the model cannot take is a one-line error before
    any training, whatever the model."""
    import torch

    divisor = getattr(model, "size_divisor", None)
    if divisor and img_size % divisor:
        valid = ", ".join(str(divisor * k) for k in (img_size // divisor, img_size // divisor + 1) if k)
        raise UserError(f"--img-size {img_size}: {builder} needs a size divisible by {divisor} (nearest: {valid})")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 3, img_size, img_size, device=device))
    except torch.cuda.OutOfMemoryError:
        raise
    except (ValueError, RuntimeError) as err:
        detail = " ".join(str(err).split())[:300]
        raise UserError(f"--img-size {img_size}: {builder} cannot run at this size: {detail}") from err
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, 1, img_size, img_size):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(
            f"--img-size {img_size}: {builder} returns {shape} for a 1 x 3 x {img_size} x {img_size} input; "
            "training needs 1 channel of logits at the input size"
        )
