"""HiFormer-B (Heidari et al., "HiFormer: Hierarchical Multi-scale Representations Using Transformers for
Medical Image Segmentation", WACV 2023). Reference: github.com/amirhossein-kz/HiFormer, HiFormer-B config.

* CNN branch: timm ``resnet50`` stem and layers 1-3 (256, 512, 1024 channels at 1/4, 1/8, 1/16).
* Swin branch: timm Swin-T stages 1-3 (depths 2, 2, 6; heads 3, 6, 12; widths 96, 192, 384), no patch
  embedding: the 1x1-projected ResNet maps are its input and are added to it at every level.
* Double-Level Fusion of the 1/4 (96-d) and 1/16 (384-d) levels: class tokens, position embeddings, one
  CrossViT multi-scale block (ViT encoders of depth 1 and 2, heads 6 and 12, MLP ratio 2), then the
  decoder of the reference (both levels to 1/4, sum, 1x1 conv to 16, x4 upsampling, 3x3 head).
  Shared with BEFUnet in ``baselines/_crossvit_fusion.py``.

Differences from the reference (see ``_crossvit_fusion``): the fusion block runs its ViT encoders and
uses their output, as the paper describes (the current reference code throws that output away), which
adds their ~2.65 GFLOPs to fvcore's count (10.61 G; 7.96 G for the reference, whose traced graph drops
the discarded encoders); one output channel; weights from local files only, ResNet initialised as
torchvision does when none is given. Parameters: 25,510,955, the reference's count exactly. As in the
paper's design, the cross-attention path (779,904 parameters) only updates class tokens that the decoder
drops, so it runs but receives zero gradient. Fixed to 224 x 224 inputs (position embeddings and Swin
windows are built for it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import timm
import torch
import torch.nn as nn

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


class ResNet50Levels(nn.Module):
    """timm ``resnet50`` up to layer 3; returns the outputs of layers 1, 2 and 3.

    Submodule names are timm's (= torchvision's), so ResNet-50 checkpoints load without renaming.
    """

    channels = (256, 512, 1024)

    def __init__(self, weights_file: PathLike | None = None):
        super().__init__()
        # zero_init_last=False: torchvision's initialisation (timm zeroes each block's last BN scale)
        resnet = timm.create_model("resnet50", pretrained=False, zero_init_last=False)
        self.conv1, self.bn1, self.act1, self.maxpool = resnet.conv1, resnet.bn1, resnet.act1, resnet.maxpool
        self.layer1, self.layer2, self.layer3 = resnet.layer1, resnet.layer2, resnet.layer3
        if weights_file is not None:
            state = timm.models.load_state_dict(os.fspath(weights_file))
            load_matching_weights(self, state, f"ResNet-50 weights {os.fspath(weights_file)!r}")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        return [c1, c2, self.layer3(c2)]


class HiFormerB(HybridFusionSegmenter):
    """HiFormer-B for ``3 x 224 x 224`` inputs; returns ``num_classes`` logit maps at 224 x 224."""

    input_size = INPUT_SIZE
    display_name = "HiFormer-B"

    def __init__(
        self,
        num_classes: int = 1,
        resnet_file: PathLike | None = None,
        swin_file: PathLike | None = None,
        cross_pos_embed: bool = True,
    ):
        dims = SWIN_TINY_DIMS[:3]
        cnn = ResNet50Levels(resnet_file)
        encoder = HybridPyramidEncoder(cnn, cnn.channels, swin_tiny_stages(3, swin_file), dims)
        fusion = DoubleLevelFusion(
            dims=(dims[0], dims[-1]),
            grid_sizes=(INPUT_SIZE // 4, INPUT_SIZE // 16),
            depth=(1, 2, 0),
            num_heads=(6, 12),
            mlp_ratio=(2.0, 2.0, 1.0),
            pos_embed=cross_pos_embed,
        )
        decoder = TwoLevelDecoder(dims[0], dims[-1], coarse_upsamplings=2, num_classes=num_classes)
        super().__init__(encoder, fusion, decoder)


@register_model(family="Hybrid", display_name="HiFormer-B", fixed_input_size=INPUT_SIZE)
def hiformer_b(
    pretrained_file: PathLike | Mapping[str, PathLike] | None = None,
    *,
    resnet_file: PathLike | None = None,
    swin_file: PathLike | None = None,
    **kwargs,
) -> nn.Module:
    """HiFormer-B, trained from scratch unless local ImageNet weights are given.

    HiFormer-B has two backbones, so ``pretrained_file`` is a mapping
    ``{"resnet": path, "swin": path}`` (either key may be left out; ``"resnet_file"``/``"swin_file"``
    are accepted as keys too), or use the keywords ``resnet_file=`` and ``swin_file=``.

    * ResNet-50: a timm or torchvision ``resnet50`` state dict (``.pth`` or ``.safetensors``);
      layers 1-3 and the stem are used.
    * Swin-T: ``swin_tiny_patch4_window7_224`` weights in timm's or Microsoft's original layout;
      stages 1-3 are used (the original checkpoint's first two patch mergings included).

    Other keywords (``num_classes``, ``cross_pos_embed``) go to :class:`HiFormerB`.
    """
    files = resolve_weight_files("HiFormer-B", pretrained_file, ("resnet", "swin"), resnet=resnet_file, swin=swin_file)
    return HiFormerB(resnet_file=files.get("resnet"), swin_file=files.get("swin"), **kwargs)
