"""The training recipe's pieces shared by every model: the loss and the learning-rate schedule."""

from __future__ import annotations

import torch.nn as nn


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
