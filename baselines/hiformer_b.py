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
the discarded encoders); one output channel; ResNet initialised as torchvision does when no weights are
given. Parameters: 25,510,955, the reference's count exactly. As in the paper's design, the cross-attention
path (779,904 parameters) only updates class tokens that the decoder drops, so it runs but receives zero
gradient. Fixed to 224 x 224 inputs (position embeddings and Swin
windows are built for it).

The reference starts from torchvision's ImageNet ResNet-50 and Microsoft's Swin-T ImageNet-1k checkpoint;
``pretrained=True`` loads both from the Hugging Face Hub (timm ``resnet50.tv_in1k``, which holds torchvision's
weights, and ``swin_tiny_patch4_window7_224.ms_in1k``).
"""

from __future__ import annotations

import torch.nn as nn

from baselines._cnn_parts import ResNetTrunk, resnet_pretrained_cfg
from baselines._crossvit_fusion import HybridFusionSegmenter
from baselines._swin_parts import swin_tiny_pretrained_cfg
from models.pretrained import PretrainedFile, build_model_with_cfg
from models.registry import register_model

INPUT_SIZE = 224

HUB_WEIGHTS = {"resnet": "resnet50.tv_in1k", "swin": "swin_tiny_patch4_window7_224.ms_in1k"}
PRETRAINED_CFGS = {
    "resnet": resnet_pretrained_cfg("resnet50", "encoder.cnn", hub=HUB_WEIGHTS["resnet"]),
    "swin": swin_tiny_pretrained_cfg("encoder.swin", hub=HUB_WEIGHTS["swin"]),
}


class HiFormerB(HybridFusionSegmenter):
    """HiFormer-B for ``3 x 224 x 224`` inputs; returns ``num_classes`` logit maps at 224 x 224."""

    def __init__(self, num_classes: int = 1, cross_pos_embed: bool = True):
        # zero_init_last=False: torchvision's initialisation (timm zeroes each block's last BN scale)
        cnn = ResNetTrunk("resnet50", num_layers=3, zero_init_last=False)
        super().__init__(cnn, 3, "HiFormer-B", num_classes=num_classes, cross_pos_embed=cross_pos_embed)


@register_model(family="Hybrid", display_name="HiFormer-B", fixed_input_size=INPUT_SIZE, hub_weights=HUB_WEIGHTS)
def hiformer_b(pretrained_file: PretrainedFile = None, pretrained: bool = False, **kwargs) -> nn.Module:
    """HiFormer-B, trained from scratch unless ImageNet weights are asked for.

    ``pretrained``: both backbones from the Hugging Face Hub (see the module docstring). ``pretrained_file``:
    local files instead, a mapping ``{"resnet": path, "swin": path}`` (either may be left out). ResNet-50: a
    timm or torchvision ``resnet50`` state dict (stem and layers 1-3 are used). Swin-T:
    ``swin_tiny_patch4_window7_224`` weights in timm's or Microsoft's original layout (stages 1-3 are used).
    Other keywords (``num_classes``, ``cross_pos_embed``) go to :class:`HiFormerB`.
    """
    return build_model_with_cfg(HiFormerB, "hiformer_b", PRETRAINED_CFGS, pretrained_file, pretrained, **kwargs)
