"""Input-size checks shared by the models, so that a wrong size fails with one clear message."""

from __future__ import annotations

import torch


def check_divisible(x: torch.Tensor, divisor: int, model_name: str) -> None:
    """Raise a ``ValueError`` unless the height and width of ``x`` are multiples of ``divisor``."""
    h, w = x.shape[-2:]
    if h % divisor or w % divisor:
        raise ValueError(
            f"{model_name} needs input height and width divisible by {divisor} "
            f"(e.g. {4 * divisor}, {8 * divisor}, {14 * divisor}); got {h} x {w}"
        )


def check_fixed_size(x: torch.Tensor, size: int, model_name: str) -> None:
    """Raise a ``ValueError`` unless ``x`` is ``size`` x ``size``."""
    if tuple(x.shape[-2:]) != (size, size):
        raise ValueError(f"{model_name} accepts only {size} x {size} inputs; got {tuple(x.shape[-2:])}")
