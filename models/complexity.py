"""Model size and cost: parameter counts and fvcore FLOPs (multiply-accumulates, as fvcore counts)."""

from __future__ import annotations

import logging
import warnings

import torch
import torch.nn as nn


def count_params(model: nn.Module) -> int:
    """Number of parameters (``sum(p.numel())``)."""
    return sum(p.numel() for p in model.parameters())


def fvcore_gflops(model: nn.Module, size: int | tuple[int, int] = 224, in_channels: int = 3) -> float:
    """fvcore ``FlopCountAnalysis`` total at 1 x C x H x W, in units of 1e9, with the model in eval mode."""
    h, w = (size, size) if isinstance(size, int) else size
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fvcore traces with the deprecated torch.jit machinery
            from fvcore.nn import FlopCountAnalysis

            analysis = FlopCountAnalysis(model, torch.zeros(1, in_channels, h, w))
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            # fvcore logs every op it has no counter for (grid_sample, softmax, ...) at WARNING.
            logging.getLogger("fvcore.nn.jit_analysis").setLevel(logging.ERROR)
            return analysis.total() / 1e9
    finally:
        model.train(was_training)
