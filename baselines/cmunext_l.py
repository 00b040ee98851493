"""CMUNeXt-L (Tang et al., "CMUNeXt: An efficient medical image segmentation network based on large
kernel and skip fusion", ISBI 2024); reference: github.com/FengheTan9/CMUNeXt (``cmunext_l``).

Configuration: dims 32, 64, 128, 256, 512; depths 1, 1, 1, 6, 3; kernels 3, 3, 7, 7, 7. Each encoder
stage is a stack of ConvNeXt-like blocks (residual large-kernel depthwise conv, then an inverted 4x
pointwise bottleneck; every conv is followed by GELU then BatchNorm) and a 3x3 conv-BN-ReLU that sets the
stage width. The decoder upsamples bilinearly (align_corners=False), concatenates the skip and fuses with
a grouped 3x3 conv plus an inverted pointwise bottleneck. Four 2x poolings and exact-size skip
concatenation: H and W must be multiples of 16. Same parameters, FLOPs and function as the reference.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from baselines._cnn_parts import ConvBnReLU
from models.pretrained import PretrainedFile, build_model_with_cfg
from models.registry import register_model
from models.shapes import check_divisible

__all__ = ["CMUNeXt", "cmunext_l"]

_DIVISOR = 16


def conv_gelu_bn(in_ch: int, out_ch: int, kernel_size: int = 1, groups: int = 1) -> list[nn.Module]:
    """Conv (with bias) -> GELU -> BatchNorm, the post-activation order CMUNeXt uses throughout."""
    return [
        nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, groups=groups),
        nn.GELU(),
        nn.BatchNorm2d(out_ch),
    ]


class CMUNeXtBlock(nn.Module):
    """Residual k x k depthwise conv, then pointwise expand (4x) and project back."""

    def __init__(self, dim: int, kernel_size: int):
        super().__init__()
        self.spatial = nn.Sequential(*conv_gelu_bn(dim, dim, kernel_size, groups=dim))
        self.channel = nn.Sequential(*conv_gelu_bn(dim, 4 * dim), *conv_gelu_bn(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel(self.spatial(x) + x)


class CMUNeXtStage(nn.Module):
    """``depth`` CMUNeXt blocks at ``in_ch`` followed by a conv-BN-ReLU to ``out_ch``."""

    def __init__(self, in_ch: int, out_ch: int, depth: int, kernel_size: int):
        super().__init__()
        self.blocks = nn.Sequential(*[CMUNeXtBlock(in_ch, kernel_size) for _ in range(depth)])
        self.project = ConvBnReLU(in_ch, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.blocks(x))


class SkipFusion(nn.Module):
    """Grouped (2) 3x3 conv over [skip, up], then inverted pointwise bottleneck to ``out_ch``."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.fuse = nn.Sequential(
            *conv_gelu_bn(in_ch, in_ch, 3, groups=2),
            *conv_gelu_bn(in_ch, 4 * out_ch),
            *conv_gelu_bn(4 * out_ch, out_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(x)


class DecoderStage(nn.Module):
    """2x bilinear upsampling + conv-BN-ReLU, concatenation with the skip, skip fusion."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.up_conv = ConvBnReLU(in_ch, out_ch)
        self.fusion = SkipFusion(2 * out_ch, out_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up_conv(self.up(x))
        return self.fusion(torch.cat([skip, x], dim=1))


class CMUNeXt(nn.Module):
    """CMUNeXt U-shaped network: conv stem, 5 CMUNeXt stages, 4 decoder stages, 1x1 head."""

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1,
        dims: tuple[int, ...] = (32, 64, 128, 256, 512),
        depths: tuple[int, ...] = (1, 1, 1, 6, 3),
        kernels: tuple[int, ...] = (3, 3, 7, 7, 7),
    ):
        super().__init__()
        self.stem = ConvBnReLU(in_chans, dims[0])
        stage_in = (dims[0], *dims[:-1])
        self.encoder = nn.ModuleList(
            CMUNeXtStage(i, o, d, k) for i, o, d, k in zip(stage_in, dims, depths, kernels, strict=True)
        )
        self.pool = nn.MaxPool2d(2)
        # deepest first: 512 -> 256, 256 -> 128, 128 -> 64, 64 -> 32
        self.decoder = nn.ModuleList(DecoderStage(dims[i], dims[i - 1]) for i in range(len(dims) - 1, 0, -1))
        self.head = nn.Conv2d(dims[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, _DIVISOR, "CMUNeXt-L")
        x = self.stem(x)
        skips = []
        for i, stage in enumerate(self.encoder):
            x = stage(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for stage in self.decoder:
            x = stage(x, skips.pop())
        return self.head(x)


@register_model(family="CNN", display_name="CMUNeXt-L", min_input_size=_DIVISOR)
def cmunext_l(pretrained_file: PretrainedFile = None, **kwargs) -> nn.Module:
    """CMUNeXt-L (8,286,721 parameters); trained from scratch (no ImageNet backbone)."""
    return build_model_with_cfg(CMUNeXt, "cmunext_l", {}, pretrained_file, **kwargs)
