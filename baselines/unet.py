"""U-Net (Ronneberger et al., MICCAI 2015) as in milesial/Pytorch-UNet with ``bilinear=False``.

Encoder of five double-convolution stages (64, 128, 256, 512, 1024 channels) joined by 2x2 max-pools;
decoder of four stages that upsample with a 2x2 stride-2 transposed convolution halving the channels,
concatenate the skip (skip first) and apply a double convolution; a 1x1 convolution gives the logits.
Every 3x3 convolution is bias-free and followed by BatchNorm and ReLU, as in the reference's current
master (commit 514f18e removed the biases before BN), so the parameter count is the reference's 31,037,633.

Deliberate difference: the reference pads the upsampled map when a skip connection is larger (odd
sizes). Here H and W must be multiples of 16 (four 2x2 pools) and other sizes raise a ``ValueError``;
pad the input yourself if needed. For multiples of 16 the reference's padding is a no-op, so outputs
are identical. Trained from scratch: there is no pretrained backbone.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from baselines._cnn_parts import DoubleConv
from models.pretrained import PretrainedFile, build_model_with_cfg
from models.registry import register_model
from models.shapes import check_divisible

__all__ = ["UNet", "unet"]

SIZE_DIVISOR = 16  # four 2x2 max-pools


class DownStage(nn.Sequential):
    """Halve the resolution with a 2x2 max-pool, then a (bias-free) double convolution."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels, bias=False))


class UpStage(nn.Module):
    """Transposed-conv x2 upsampling (channels halved), concatenation with the skip, double conv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.upsample = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.fuse = DoubleConv(in_channels, out_channels, bias=False)  # skip and upsampled halves

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([skip, self.upsample(x)], dim=1))


class UNet(nn.Module):
    """The classic U-Net; ``widths`` are the channels of the five encoder stages."""

    def __init__(self, in_channels: int = 3, num_classes: int = 1, widths: tuple[int, ...] = (64, 128, 256, 512, 1024)):
        super().__init__()
        self.stem = DoubleConv(in_channels, widths[0], bias=False)
        self.down_stages = nn.ModuleList(
            DownStage(c_in, c_out) for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )
        deep_to_shallow = widths[::-1]
        self.up_stages = nn.ModuleList(
            UpStage(c_in, c_out) for c_in, c_out in zip(deep_to_shallow[:-1], deep_to_shallow[1:], strict=True)
        )
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        self.size_divisor = 2 ** len(self.down_stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.size_divisor, "U-Net")
        x = self.stem(x)
        skips = []
        for down in self.down_stages:
            skips.append(x)
            x = down(x)
        for up, skip in zip(self.up_stages, reversed(skips), strict=True):
            x = up(x, skip)
        return self.head(x)


@register_model(family="CNN", display_name="Unet", min_input_size=SIZE_DIVISOR)
def unet(pretrained_file: PretrainedFile = None, **kwargs) -> nn.Module:
    """U-Net with transposed-conv upsampling (31.04 M params); H and W must be multiples of 16. Trained
    from scratch (no ImageNet backbone)."""
    return build_model_with_cfg(UNet, "unet", {}, pretrained_file, **kwargs)
