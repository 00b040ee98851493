"""A timm-style model registry: ``@register_model`` builders, ``create_model(name)``, ``list_models()``."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn

ModelBuilder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelInfo:
    """What the harness knows about a registered model besides its builder."""

    name: str
    builder: ModelBuilder
    family: str = "Other"  # report group: CNN, Transformer, Hybrid, Ours, Ablation, ...
    display_name: str = ""  # name in the paper's tables; defaults to ``name``
    min_input_size: int = 64  # smallest square input the model accepts (smoke tests use it)
    fixed_input_size: int | None = None  # set when the model accepts exactly one size


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    fn: ModelBuilder | None = None,
    *,
    name: str | None = None,
    family: str = "Other",
    display_name: str | None = None,
    min_input_size: int = 64,
    fixed_input_size: int | None = None,
):
    """Register a builder under its function name (or ``name``).

    Usable bare (``@register_model``) or with metadata (``@register_model(family="CNN")``).
    """

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        key = name or builder.__name__
        old = _REGISTRY.get(key)
        if old is not None and old.builder.__qualname__ != builder.__qualname__:
            raise ValueError(f"model {key!r} is already registered by {old.builder.__module__}")
        _REGISTRY[key] = ModelInfo(
            name=key,
            builder=builder,
            family=family,
            display_name=display_name or key,
            min_input_size=fixed_input_size or min_input_size,
            fixed_input_size=fixed_input_size,
        )
        return builder

    return decorator(fn) if fn is not None else decorator


def _ensure_discovered() -> None:
    # Baselines register themselves on import; import them lazily so that registry users
    # never depend on import order.
    from models import discover

    discover()


def _find(name: str) -> ModelInfo | None:
    """Look ``name`` up, importing as little as possible: the pipeline starts one process per stage,
    and importing every baseline (timm, smp, ...) costs seconds of CPU each time."""
    from models import discover_one

    if name not in _REGISTRY:
        discover_one(name)
    if name not in _REGISTRY:
        _ensure_discovered()
    return _REGISTRY.get(name)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching a shell-style ``pattern``."""
    _ensure_discovered()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def model_info(name: str) -> ModelInfo:
    """Registry metadata of ``name`` (family, display name, accepted input sizes)."""
    info = _find(name)
    if info is None:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(_REGISTRY))}")
    return info


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name``; keyword arguments go to its builder."""
    return model_info(name).builder(**kwargs)
