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
* one output channel; the edge branch starts from random weights unless ``pidinet_file`` is given
  (the reference always loads its BSDS-trained ``table5_pidinet-small.pth``).

Fixed to 224 x 224 inputs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines._crossvit_fusion import (
    SWIN_TINY_DIMS,
    DoubleLevelFusion,
    HybridFusionSegmenter,
    HybridPyramidEncoder,
    PathLike,
    TwoLevelDecoder,
    load_matching_weights,
    resolve_weight_files,
    swin_tiny_stages,
)
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

    def __init__(self, weights_file: PathLike | None = None):
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
        if weights_file is not None:
            self.load_pidinet_checkpoint(weights_file)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for level in self.levels:
            x = level(x)
            outs.append(x)
        return outs

    def load_pidinet_checkpoint(self, path: PathLike) -> None:
        """Load an official PiDiNet-small checkpoint (``{"state_dict": {"module.block1_1.conv1.weight":
        ...}}``, e.g. BEFUnet's ``weights/table5_pidinet-small.pth``); its edge heads are ignored."""
        ckpt = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, Mapping) else ckpt
        part_names = {"conv1": "depthwise", "conv2": "pointwise", "shortcut": "shortcut"}
        mapped = {}
        for key, value in state.items():
            key = key.removeprefix("module.")
            head, _, rest = key.partition(".")
            if head == "init_block":
                mapped[f"levels.0.0.{rest}"] = value
            elif head.startswith("block") and "_" in head:
                stage, index = (int(s) for s in head[len("block") :].split("_"))
                part, _, tail = rest.partition(".")
                # Stage 1 has the initial conv at position 0; the others start with their block _1.
                position = index if stage == 1 else index - 1
                mapped[f"levels.{stage - 1}.{position}.{part_names.get(part, part)}.{tail}"] = value
        load_matching_weights(self, mapped, f"PiDiNet-small weights {os.fspath(path)!r}")


class BEFUnet(HybridFusionSegmenter):
    """BEFUnet for ``3 x 224 x 224`` inputs; returns ``num_classes`` logit maps at 224 x 224."""

    input_size = INPUT_SIZE
    display_name = "BEFUnet"

    def __init__(
        self,
        num_classes: int = 1,
        swin_file: PathLike | None = None,
        pidinet_file: PathLike | None = None,
        cross_pos_embed: bool = True,
    ):
        dims = SWIN_TINY_DIMS
        edges = PiDiNetSmallLevels(pidinet_file)
        encoder = HybridPyramidEncoder(edges, edges.channels, swin_tiny_stages(4, swin_file), dims, projection_stride=4)
        fusion = DoubleLevelFusion(
            dims=(dims[0], dims[-1]),
            grid_sizes=(INPUT_SIZE // 4, INPUT_SIZE // 32),
            depth=(1, 2, 0),
            num_heads=(6, 12),
            mlp_ratio=(2.0, 2.0, 1.0),
            pos_embed=cross_pos_embed,
        )
        decoder = TwoLevelDecoder(dims[0], dims[-1], coarse_upsamplings=3, num_classes=num_classes)
        super().__init__(encoder, fusion, decoder)


@register_model(family="Hybrid", display_name="BEFUnet", fixed_input_size=INPUT_SIZE)
def befunet(
    pretrained_file: PathLike | Mapping[str, PathLike] | None = None,
    *,
    swin_file: PathLike | None = None,
    pidinet_file: PathLike | None = None,
    **kwargs,
) -> nn.Module:
    """BEFUnet, trained from scratch unless local weights are given.

    ``pretrained_file``: a local Swin-T ImageNet checkpoint (``swin_tiny_patch4_window7_224``, timm's or
    Microsoft's original layout, ``.pth`` or ``.safetensors``), or a mapping
    ``{"swin": path, "pidinet": path}``. ``swin_file=`` / ``pidinet_file=`` do the same as keywords;
    the PiDiNet file is an official PiDiNet-small checkpoint such as the reference's
    ``table5_pidinet-small.pth``. Other keywords (``num_classes``, ``cross_pos_embed``) go to
    :class:`BEFUnet`.
    """
    files = resolve_weight_files(
        "BEFUnet",
        pretrained_file,
        ("swin", "pidinet"),
        default_name="swin",
        swin=swin_file,
        pidinet=pidinet_file,
    )
    return BEFUnet(swin_file=files.get("swin"), pidinet_file=files.get("pidinet"), **kwargs)
