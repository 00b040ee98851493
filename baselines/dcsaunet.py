"""DCSAU-Net (Xu et al., "DCSAU-Net: A deeper and more compact split-attention U-Net for medical image
segmentation", Computers in Biology and Medicine 2023); reference: github.com/xq141839/DCSAU-Net.

A primary feature conservation (PFC) stem keeps a full-resolution 64-channel map; four encoder and four
decoder stages each stack two compact split-attention (CSA) bottlenecks. A CSA unit is a ResNeSt-style
split attention with radix 2 whose second branch is refined by an extra grouped 3x3 convolution applied
to the sum of both branches before the attention weights are computed; timm's ``SplitAttn`` has no such
cross-branch refinement, so the unit is written here. The decoder upsamples bilinearly (align_corners)
and pads to the skip's size, so no divisibility is needed: H and W must only be >= 16 (four 2x poolings).

Deliberate differences from the reference code (none changes parameters, FLOPs or the function):
- The reference builds the CSA stages once at import time and every ``Model()`` shares them; each
  model built here owns its weights.
- The projection shortcuts' 1x1/stride-1 average pool (an identity) is left out.
- Split-attention softmax over the two branches is written directly (cardinality is 1).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.pretrained import PretrainedFile, build_model_with_cfg
from models.registry import register_model

__all__ = ["DCSAUNet", "dcsaunet"]

_MIN_SIZE = 16  # four 2x max-poolings; odd sizes are handled by padding in the decoder


class PrimaryFeatureConservation(nn.Module):
    """PFC stem: large-kernel conv, residual depthwise conv, pointwise conv (each conv-ReLU-BN)."""

    def __init__(self, in_chans: int = 3, channels: int = 64, kernel_size: int = 7):
        super().__init__()
        pad = kernel_size // 2
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, channels, kernel_size, padding=pad),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(channels),
        )
        self.depthwise = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size, padding=pad, groups=channels),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(channels),
        )
        self.pointwise = nn.Sequential(
            nn.Conv2d(channels, channels, 1),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.depthwise(x) + x
        return self.pointwise(x)


class CompactSplitAttention(nn.Module):
    """Radix-2 split attention; branch 2 is refined by a grouped 3x3 conv of (branch 1 + branch 2)."""

    def __init__(self, channels: int, reduction: int = 4, min_attn_channels: int = 32):
        super().__init__()
        attn_channels = max(channels * 2 // reduction, min_attn_channels)
        self.split_conv = nn.Conv2d(channels, 2 * channels, 3, padding=1, groups=2, bias=False)
        self.split_norm = nn.BatchNorm2d(2 * channels)
        self.refine_conv = nn.Conv2d(channels, channels, 3, padding=1, groups=2, bias=False)
        self.refine_norm = nn.BatchNorm2d(channels)
        self.attn_reduce = nn.Conv2d(channels, attn_channels, 1)
        self.attn_norm = nn.BatchNorm2d(attn_channels)
        self.attn_expand = nn.Conv2d(attn_channels, 2 * channels, 1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = self.act(self.split_norm(self.split_conv(x))).chunk(2, dim=1)
        second = self.act(self.refine_norm(self.refine_conv(first + second)))
        context = F.adaptive_avg_pool2d(first + second, 1)
        weights = self.attn_expand(self.act(self.attn_norm(self.attn_reduce(context))))
        b, c2 = weights.shape[:2]
        w_first, w_second = weights.view(b, 2, c2 // 2, 1, 1).softmax(dim=1).unbind(dim=1)
        return w_first * first + w_second * second


class CSABottleneck(nn.Module):
    """1x1 reduce -> compact split attention (-> 3x3/s1 average pool) -> 1x1 expand (x4), residual."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, smooth: bool = False):
        super().__init__()
        out_channels = width * self.expansion
        self.reduce = nn.Sequential(
            nn.Conv2d(in_channels, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        self.attention = CompactSplitAttention(width)
        # the reference's "avd" average pool, kept at stride 1 (it only smooths)
        self.smooth = nn.AvgPool2d(3, stride=1, padding=1) if smooth else nn.Identity()
        self.expand = nn.Sequential(nn.Conv2d(width, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.shortcut = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
            if in_channels != out_channels
            else nn.Identity()
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(self.smooth(self.attention(self.reduce(x))))
        return self.act(out + self.shortcut(x))


def csa_stage(in_channels: int, width: int, smooth_first: bool = True, depth: int = 2) -> nn.Sequential:
    """``depth`` CSA bottlenecks; only the first may project the input and apply the smoothing pool."""
    out_channels = width * CSABottleneck.expansion
    blocks = [CSABottleneck(in_channels, width, smooth=smooth_first)]
    blocks += [CSABottleneck(out_channels, width) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)


def upsample_and_concat(low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """Bilinear 2x upsampling (align_corners=True), zero-pad to the skip's size, concat [skip, up]."""
    up = F.interpolate(low, scale_factor=2.0, mode="bilinear", align_corners=True)
    dy, dx = skip.shape[-2] - up.shape[-2], skip.shape[-1] - up.shape[-1]
    if dy or dx:
        up = F.pad(up, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
    return torch.cat([skip, up], dim=1)


class DCSAUNet(nn.Module):
    """PFC stem, 4 CSA encoder stages (max-pool between), 4 CSA decoder stages, 1x1 head."""

    def __init__(self, in_chans: int = 3, num_classes: int = 1):
        super().__init__()
        self.stem = PrimaryFeatureConservation(in_chans, 64)
        self.pool = nn.MaxPool2d(2)
        self.encoder = nn.ModuleList(
            [
                csa_stage(64, 32, smooth_first=False),  # 1/2, 128 ch
                csa_stage(128, 64),  # 1/4, 256 ch
                csa_stage(256, 128),  # 1/8, 512 ch
                csa_stage(512, 128),  # 1/16, 512 ch
            ]
        )
        self.decoder = nn.ModuleList(
            [
                csa_stage(512 + 512, 64),  # 1/8, 256 ch
                csa_stage(256 + 256, 32),  # 1/4, 128 ch
                csa_stage(128 + 128, 16),  # 1/2, 64 ch
                csa_stage(64 + 64, 16, smooth_first=False),  # 1/1, 64 ch
            ]
        )
        self.head = nn.Conv2d(64, num_classes, 1)
        self._init_csa_weights()

    def _init_csa_weights(self) -> None:
        # as the reference: He-normal (fan-out) convs and unit/zero BN in the CSA stages only
        for m in [*self.encoder.modules(), *self.decoder.modules()]:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h < _MIN_SIZE or w < _MIN_SIZE:
            raise ValueError(f"DCSAU-Net needs H and W >= {_MIN_SIZE} (four 2x poolings), got {h}x{w}")
        skips = [self.stem(x)]
        for stage in self.encoder:
            skips.append(stage(self.pool(skips[-1])))
        x = skips.pop()
        for stage in self.decoder:
            x = stage(upsample_and_concat(x, skips.pop()))
        return self.head(x)


@register_model(family="CNN", display_name="DCSAUnet", min_input_size=_MIN_SIZE)
def dcsaunet(pretrained_file: PretrainedFile = None, **kwargs) -> nn.Module:
    """DCSAU-Net (2,598,785 parameters); trained from scratch (no ImageNet backbone)."""
    return build_model_with_cfg(DCSAUNet, "dcsaunet", {}, pretrained_file, **kwargs)
