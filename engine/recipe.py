"""The training recipe's pieces shared by every model: the loss, the learning-rate schedule, the optimiser."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch.nn as nn

if TYPE_CHECKING:
    from engine.params import TrainConfig


class BceDiceLoss(nn.Module):
    """``w_bce * BCE-with-logits + w_dice * soft Dice over the whole batch`` on sigmoid probabilities."""

    def __init__(self, bce_weight: float = 0.5, dice_weight: float = 0.5, smooth: float = 1.0):
        from segmentation_models_pytorch.losses import DiceLoss  # smp imports timm and torchvision: only when used

        super().__init__()
        self.bce_weight, self.dice_weight = bce_weight, dice_weight
        self.bce = nn.BCEWithLogitsLoss()
        self.dice = DiceLoss(mode="binary", from_logits=True, smooth=smooth)

    def forward(self, logits, target):
        logits = logits.float()
        return self.bce_weight * self.bce(logits, target) + self.dice_weight * self.dice(logits, target)


def warmup_poly_factor(step: int, total_steps: int, warmup_steps: int, power: float) -> float:
    """LR multiplier: linear warm-up to 1 over ``warmup_steps``, then (1 - progress)^power down to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return max(0.0, 1.0 - progress) ** power


def epochs_for_steps(steps: int, steps_per_epoch: int) -> int:
    """The epochs of a run with a budget of ``steps`` optimiser steps: enough whole epochs to make at least that
    many (a run never stops inside an epoch, so it makes ``epochs * steps_per_epoch`` steps, recorded in
    train.json; every model on one dataset with one batch size makes the same number)."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
    return max(1, math.ceil(steps / steps_per_epoch))


def optimisation(model, cfg: TrainConfig, steps_per_epoch: int, device, amp_dtype):
    """The recipe's loss, AdamW, warm-up + poly schedule (per step) and gradient scaler."""
    import torch

    criterion = BceDiceLoss(cfg.bce_weight, cfg.dice_weight, cfg.dice_smooth)
    # fused: one kernel for all parameters; on CUDA the GradScaler step then needs no host sync
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, fused=True
    )
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = round(cfg.warmup_epochs * min(1.0, cfg.epochs / cfg.reference_epochs) * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_poly_factor(step, total_steps, warmup_steps, cfg.poly_power)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    return criterion, optimizer, scheduler, scaler
