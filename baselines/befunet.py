"""BEFUnet (Manzari et al., "BEFUnet: A Hybrid CNN-Transformer Architecture for Precise Medical Image
Segmentation", 2024). Reference: github.com/Omid-Nejati/BEFUnet, default config.

* Edge branch: the 16 pixel-difference-convolution layers of PiDiNet-small (Su et al., ICCV 2021;
  width 30, layer pattern "carv4": central, angular, radial and vanilla differences in turn), giving
  30, 60, 120, 120 channels at 1/1, 1/2, 1/4, 1/8. PiDiNet's edge heads (dilation, attention and
  reduction modules, classifier) are not part of BEFUnet and are not built.
* Body branch: all four stages of timm's Swin-T (no patch embedding). At every level the edge map,
  projected by a stride-4 1x1 convolution (to 96, 192, 384, 768 channels at 1/4 ... 1/32), is added to
  the Swin tokens.
* Fusion of the 1/4 (96-d) and 1/32 (768-d) levels and decoder as in HiFormer (see
  ``baselines/_crossvit_fusion.py``; the decoder upsamples the coarse level three times).

Differences from the reference:
* the fusion block uses the output of its ViT encoders, as the HiFormer paper that BEFUnet builds on
  describes (the reference throws that output away; see ``_crossvit_fusion``). fvcore: 8.53 G against
  the reference's 5.93 G, whose traced graph drops the discarded encoders (2.60 G). As in HiFormer, the
  cross-attention path (2,701,440 parameters) only updates class tokens that the decoder drops;
* PiDiNet's four ``MapReduce`` convolutions (52 parameters), which the reference keeps but never runs,
  are not built: 41,692,397 parameters against the reference's 41,692,449;
* the learnable position embeddings of the fusion (339,552 parameters) ARE kept: the reference adds them
  to the tokens in every forward pass (``cross_pos_embed=True``), so they are live;
* a central-difference convolution is applied as one convolution with its equivalent kernel (the
  reference runs a 3x3 and a 1x1 convolution and subtracts; identical result);
* one output channel; the edge branch starts from random weights unless a PiDiNet file is given
  (``pretrained_file={"pidinet": path}``; the reference always loads its BSDS-trained
  ``table5_pidinet-small.pth``; timm and smp have no PiDiNet, so ``pretrained=True`` cannot
  fetch it). ``pretrained=True`` loads the Swin-T branch from the Hub (timm
  ``swin_tiny_patch4_window7_224.ms_in1k``: Microsoft's ImageNet-1k checkpoint, the reference's file).

Fixed to 224 x 224 inputs.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines._crossvit_fusion import HybridFusionSegmenter
from baselines._swin_parts import swin_tiny_pretrained_cfg
from models.pretrained import PretrainedCfg, PretrainedFile, StateDict, build_model_with_cfg
from models.registry import register_model

INPUT_SIZE = 224

# Flat 3x3 positions: angular difference subtracts from each tap its clockwise neighbour.
_CLOCKWISE_NEIGHBOUR = (3, 0, 1, 6, 4, 2, 7, 8, 5)
# Flat 5x5 positions of the outer and inner rings used by radial difference (3x3 taps 1..8).
_RADIAL_OUTER = (0, 2, 4, 10, 14, 20, 22, 24)
_RADIAL_INNER = (6, 7, 8, 11, 13, 16, 17, 18)


class PixelDifferenceConv2d(nn.Conv2d):
    """3x3 pixel-difference convolution (stride 1, no bias) of PiDiNet.

    ``mode``: ``"cd"`` central (each tap minus the centre pixel), ``"ad"`` angular (differences of
    clockwise neighbours), ``"rd"`` radial (outer 5x5 ring minus inner ring, padding 2). The learned
    3x3 weight is turned into an ordinary kernel on every call, so gradients flow to the same
    parameters as in PiDiNet.
    """

    def __init__(self, in_channels: int, out_channels: int, mode: str, groups: int = 1):
        if mode not in ("cd", "ad", "rd"):
            raise ValueError(f"unknown pixel-difference mode {mode!r}")
        super().__init__(in_channels, out_channels, kernel_size=3, padding=1, groups=groups, bias=False)
        self.mode = mode

    def equivalent_kernel(self) -> torch.Tensor:
        w = self.weight.flatten(2)
        if self.mode == "cd":
            centre = torch.zeros_like(w)
            centre[:, :, 4] = w.sum(dim=2)
            return (w - centre).view_as(self.weight)
        if self.mode == "ad":
            return (w - w[:, :, list(_CLOCKWISE_NEIGHBOUR)]).view_as(self.weight)
        kernel = w.new_zeros(w.shape[0], w.shape[1], 25)
        kernel[:, :, list(_RADIAL_OUTER)] = w[:, :, 1:]
        kernel[:, :, list(_RADIAL_INNER)] = -w[:, :, 1:]
        return kernel.view(w.shape[0], w.shape[1], 5, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padding = 2 if self.mode == "rd" else 1
        return F.conv2d(x, self.equivalent_kernel(), None, stride=1, padding=padding, groups=self.groups)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mode={self.mode}"


def pixel_difference_conv(in_channels: int, out_channels: int, mode: str, groups: int = 1) -> nn.Conv2d:
    if mode == "cv":
        return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, groups=groups, bias=False)
    return PixelDifferenceConv2d(in_channels, out_channels, mode, groups=groups)


class PixelDifferenceBlock(nn.Module):
    """PiDiNet block: [2x2 max-pool] -> depthwise pixel-difference conv -> ReLU -> 1x1 conv, plus a
    residual (a biased 1x1 conv of the pooled input when the block downsamples)."""

    def __init__(self, in_channels: int, out_channels: int, mode: str, downsample: bool = False):
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2) if downsample else nn.Identity()
        self.depthwise = pixel_difference_conv(in_channels, in_channels, mode, groups=in_channels)
        self.act = nn.ReLU()
        self.pointwise = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1) if downsample else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        return self.pointwise(self.act(self.depthwise(x))) + self.shortcut(x)


class PiDiNetSmallLevels(nn.Module):
    """PiDiNet-small ("carv4") trunk; returns the four level outputs (30, 60, 120, 120 channels)."""

    channels = (30, 60, 120, 120)
    modes = ("cd", "ad", "rd", "cv")

    def __init__(self):
        super().__init__()
        c = self.channels
        first = [pixel_difference_conv(3, c[0], self.modes[0])]
        first += [PixelDifferenceBlock(c[0], c[0], m) for m in self.modes[1:]]
        levels = [nn.Sequential(*first)]
        for prev, width in zip(c[:-1], c[1:], strict=True):
            blocks = [PixelDifferenceBlock(prev, width, self.modes[0], downsample=True)]
            blocks += [PixelDifferenceBlock(width, width, m) for m in self.modes[1:]]
            levels.append(nn.Sequential(*blocks))
        self.levels = nn.ModuleList(levels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for level in self.levels:
            x = level(x)
            outs.append(x)
        return outs


def pidinet_checkpoint_filter(state: StateDict, module: nn.Module) -> StateDict:
    """An official PiDiNet-small checkpoint (``block1_1.conv1.weight``, ...; ``"module."`` already removed)
    onto :class:`PiDiNetSmallLevels`; its edge heads (dilation, attention, reduction, classifier) are dropped."""
    part_names = {"conv1": "depthwise", "conv2": "pointwise", "shortcut": "shortcut"}
    mapped = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head == "init_block":
            mapped[f"levels.0.0.{rest}"] = value
        elif head.startswith("block") and "_" in head:
            stage, index = (int(s) for s in head[len("block") :].split("_"))
            part, _, tail = rest.partition(".")
            # Stage 1 has the initial conv at position 0; the others start with their block _1.
            position = index if stage == 1 else index - 1
            mapped[f"levels.{stage - 1}.{position}.{part_names.get(part, part)}.{tail}"] = value
    return mapped


HUB_WEIGHTS = {"swin": "swin_tiny_patch4_window7_224.ms_in1k", "pidinet": None}  # PiDiNet: local files only
PRETRAINED_CFGS = {
    "swin": swin_tiny_pretrained_cfg("encoder.swin", hub=HUB_WEIGHTS["swin"]),
    "pidinet": PretrainedCfg(
        "PiDiNet-small (e.g. the reference's table5_pidinet-small.pth)",
        module="encoder.cnn",
        filter_fn=pidinet_checkpoint_filter,
    ),
}


class BEFUnet(HybridFusionSegmenter):
    """BEFUnet for ``3 x 224 x 224`` inputs; returns ``num_classes`` logit maps at 224 x 224."""

    def __init__(self, num_classes: int = 1, cross_pos_embed: bool = True):
        super().__init__(
            PiDiNetSmallLevels(),
            4,
            "BEFUnet",
            num_classes=num_classes,
            projection_stride=4,
            cross_pos_embed=cross_pos_embed,
        )


@register_model(family="Hybrid", display_name="BEFUnet", fixed_input_size=INPUT_SIZE, hub_weights=HUB_WEIGHTS)
def befunet(pretrained_file: PretrainedFile = None, pretrained: bool = False, **kwargs) -> nn.Module:
    """BEFUnet, trained from scratch unless weights are asked for.

    ``pretrained``: Swin-T ImageNet weights from the Hugging Face Hub (timm has no PiDiNet).
    ``pretrained_file``: local files, a mapping ``{"swin": path, "pidinet": path}`` (either may be left out; a
    file takes precedence over ``pretrained``). Swin-T:
    ``swin_tiny_patch4_window7_224`` ImageNet weights in timm's or Microsoft's original layout (``.pth`` or
    ``.safetensors``). PiDiNet: an official PiDiNet-small checkpoint such as the reference's
    ``table5_pidinet-small.pth``. Other keywords (``num_classes``, ``cross_pos_embed``) go to
    :class:`BEFUnet`.
    """
    return build_model_with_cfg(BEFUnet, "befunet", PRETRAINED_CFGS, pretrained_file, pretrained, **kwargs)
