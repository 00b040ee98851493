"""Attention U-Net (Oktay et al., MIDL 2018) as ``AttU_Net`` in LeeJunHyun/Image_Segmentation.

A 64-1024 channel U-Net whose decoder upsamples by nearest-neighbour x2 followed by a 3x3
conv-BN-ReLU, and gates each skip connection with an additive attention gate before concatenation
(gated skip first): the gate projects the decoder map (gating signal) and the skip map to
``channels // 2`` with 1x1 conv + BN each, adds them, applies ReLU, a 1x1 conv + BN to one channel and
a sigmoid, and multiplies the skip by the resulting map. All convolutions carry biases, as in the
reference (34,878,573 parameters); weights use PyTorch's default initialisation, as the reference's
training code does (its ``init_weights`` helper is never called).

Deliberate difference: H and W must be multiples of 16 (four 2x2 max-pools); other sizes raise a
``ValueError`` instead of failing inside ``torch.cat`` as the reference does. Trained from scratch.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from baselines._cnn_parts import ConvBnReLU, DoubleConv
from models.pretrained import PretrainedFile, build_model_with_cfg
from models.registry import register_model
from models.shapes import check_divisible

__all__ = ["AttentionUNet", "attention_unet"]

SIZE_DIVISOR = 16  # four 2x2 max-pools


class NearestUpConv(nn.Sequential):
    """Nearest-neighbour x2 upsampling followed by a 3x3 conv -> BatchNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), *ConvBnReLU(in_channels, out_channels))


class AttentionGate(nn.Module):
    """Additive attention gate: weights ``skip`` by sigmoid(psi(relu(W_g gate + W_x skip)))."""

    def __init__(self, gate_channels: int, skip_channels: int, inner_channels: int):
        super().__init__()
        self.project_gate = nn.Sequential(nn.Conv2d(gate_channels, inner_channels, 1), nn.BatchNorm2d(inner_channels))
        self.project_skip = nn.Sequential(nn.Conv2d(skip_channels, inner_channels, 1), nn.BatchNorm2d(inner_channels))
        self.coefficients = nn.Sequential(nn.Conv2d(inner_channels, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, gate: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        alpha = self.coefficients(self.relu(self.project_gate(gate) + self.project_skip(skip)))
        return skip * alpha


class AttentionUpStage(nn.Module):
    """Upsample the decoder map, gate the skip with it, concatenate (skip first), double conv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.upsample = NearestUpConv(in_channels, out_channels)
        self.gate = AttentionGate(out_channels, out_channels, out_channels // 2)
        self.fuse = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.upsample(x)
        return self.fuse(torch.cat([self.gate(x, skip), x], dim=1))


class AttentionUNet(nn.Module):
    """U-Net with attention-gated skips; ``widths`` are the channels of the five encoder stages."""

    def __init__(self, in_channels: int = 3, num_classes: int = 1, widths: tuple[int, ...] = (64, 128, 256, 512, 1024)):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        encoder_inputs = (in_channels, *widths[:-1])
        self.encoder_stages = nn.ModuleList(
            DoubleConv(c_in, c_out) for c_in, c_out in zip(encoder_inputs, widths, strict=True)
        )
        deep_to_shallow = widths[::-1]
        self.up_stages = nn.ModuleList(
            AttentionUpStage(c_in, c_out) for c_in, c_out in zip(deep_to_shallow[:-1], deep_to_shallow[1:], strict=True)
        )
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        self.size_divisor = 2 ** (len(widths) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.size_divisor, "Attention U-Net")
        skips = []
        for i, stage in enumerate(self.encoder_stages):
            x = stage(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, skip in zip(self.up_stages, reversed(skips), strict=True):
            x = up(x, skip)
        return self.head(x)


@register_model(family="CNN", display_name="AttentionUnet", min_input_size=SIZE_DIVISOR)
def attention_unet(pretrained_file: PretrainedFile = None, **kwargs) -> nn.Module:
    """Attention U-Net (34.88 M params); H and W must be multiples of 16. Trained from scratch (no ImageNet
    backbone)."""
    return build_model_with_cfg(AttentionUNet, "attention_unet", {}, pretrained_file, **kwargs)
