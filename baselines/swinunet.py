"""Swin-Unet (Cao et al., "Swin-Unet: Unet-like Pure Transformer for Medical Image Segmentation",
ECCV Workshops 2022, arXiv:2105.05537), one output channel.

Reference implementation: https://github.com/HuCaoFighting/Swin-Unet (``SwinTransformerSys`` in
``networks/swin_transformer_unet_skip_expand_decoder_sys.py``, config ``swin_tiny_patch4_window7_224_lite``):
Swin-T with depths 2, 2, 2, 2, heads 3, 6, 12, 24, window 7, patch 4, embed 96, drop path 0.2.

The encoder is timm's ``SwinTransformer`` with that configuration (same tensors as the reference's
encoder). timm downsamples at the start of a stage and works channels-last (B, H, W, C); the reference
merges patches at the end of a stage. The skip features are the same tensors in both: the patch
embedding output and the merged features that enter stages 1 and 2 (taken here between each timm
stage's ``downsample`` and ``blocks``). Specific to Swin-Unet and written here: patch expanding (linear +
2x2 pixel shuffle + LayerNorm), skip concatenation + linear, the decoder stages (timm Swin stages without
downsampling, depth 2 each: the reference's decoder takes the encoder's depths, not
``DECODER_DEPTHS``), the final 4x patch expanding and a bias-free 1x1 convolution. Fixed to 224 x 224.

``pretrained=True``: Microsoft's Swin-T ImageNet-1k weights (the reference's ``swin_tiny_patch4_window7_224.pth``)
from the Hugging Face Hub as timm ``swin_tiny_patch4_window7_224.ms_in1k``. ``pretrained_file``: a local Swin-T
checkpoint instead, as timm ``swin_tiny_patch4_window7_224`` ``state_dict`` (the original Microsoft
``{"model": ...}`` file works too: its keys are mapped to timm's layout). Either way, as in the reference's
``load_from``, the encoder takes the matching tensors (stage 2 gets blocks
0-1 of Swin-T's six; the classifier is dropped) and every decoder stage's blocks are initialised from the
encoder stage of the same width (mirrored). Unlike the reference, which loads with ``strict=False``
silently, a file that leaves any encoder tensor unset is rejected (``models/pretrained.py``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import calculate_drop_path_rates
from timm.models.swin_transformer import SwinTransformer, SwinTransformerStage

from baselines._swin_parts import PatchExpand, init_linear_and_norm, swin_tiny_pretrained_cfg
from models.pretrained import PretrainedFile, build_model_with_cfg, loaded_weights
from models.registry import register_model
from models.shapes import check_fixed_size

HUB_WEIGHTS = {"swin": "swin_tiny_patch4_window7_224.ms_in1k"}
PRETRAINED_CFGS = {"swin": swin_tiny_pretrained_cfg("encoder", hub=HUB_WEIGHTS["swin"])}


class DecoderStage(nn.Module):
    """Concatenate [upsampled, skip] -> linear to ``dim`` -> Swin blocks -> optional patch expanding."""

    def __init__(
        self,
        dim: int,
        resolution: int,
        *,
        depth: int,
        num_heads: int,
        window_size: int,
        drop_path: list[float],
        upsample: bool,
    ):
        super().__init__()
        self.fuse = nn.Linear(2 * dim, dim)
        self.stage = SwinTransformerStage(
            dim=dim,
            out_dim=dim,
            input_resolution=(resolution, resolution),
            depth=depth,
            downsample=False,
            num_heads=num_heads,
            window_size=window_size,
            drop_path=drop_path,
        )
        self.expand = PatchExpand(dim, dim // 2, 2) if upsample else nn.Identity()

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.expand(self.stage(self.fuse(torch.cat([x, skip], dim=-1))))


class SwinUnet(nn.Module):
    """Swin-Unet (``SwinTransformerSys`` of the reference) for ``img_size`` x ``img_size`` inputs."""

    def __init__(
        self,
        num_classes: int = 1,
        img_size: int = 224,
        *,
        embed_dim: int = 96,
        depths: tuple[int, ...] = (2, 2, 2, 2),
        num_heads: tuple[int, ...] = (3, 6, 12, 24),
        window_size: int = 7,
        drop_path_rate: float = 0.2,
    ):
        super().__init__()
        self.img_size = img_size
        self.encoder = SwinTransformer(
            img_size=img_size,
            patch_size=4,
            num_classes=0,
            embed_dim=embed_dim,
            depths=depths,
            num_heads=num_heads,
            window_size=window_size,
            drop_path_rate=drop_path_rate,
        )
        self.encoder.head = nn.Identity()  # no classifier (timm's is parameter-free at num_classes=0)
        num_stages = len(depths)
        dims = [embed_dim * 2**k for k in range(num_stages)]
        grid = img_size // 4
        drop_paths = calculate_drop_path_rates(drop_path_rate, list(depths), stagewise=True)

        self.bottleneck_expand = PatchExpand(dims[-1], dims[-1] // 2, 2)
        # Deep to shallow; the decoder stage of level k mirrors encoder stage k (width, heads, drop path).
        self.decoder_levels = list(range(num_stages - 2, -1, -1))
        self.decoder = nn.ModuleList(
            DecoderStage(
                dim=dims[k],
                resolution=grid // 2**k,
                depth=depths[k],
                num_heads=num_heads[k],
                window_size=window_size,
                drop_path=drop_paths[k],
                upsample=k > 0,
            )
            for k in self.decoder_levels
        )
        self.decoder_norm = nn.LayerNorm(embed_dim)
        self.final_expand = PatchExpand(embed_dim, embed_dim, 4)
        self.head = nn.Conv2d(embed_dim, num_classes, 1, bias=False)
        for module in (self.bottleneck_expand, self.decoder, self.decoder_norm, self.final_expand):
            module.apply(init_linear_and_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_fixed_size(x, self.img_size, "Swin-Unet")
        x = self.encoder.patch_embed(x)  # B, H/4, W/4, C
        skips = []
        for stage in self.encoder.layers:
            x = stage.downsample(x)
            skips.append(x)
            x = stage.blocks(x)
        x = self.bottleneck_expand(self.encoder.norm(x))
        for stage, level in zip(self.decoder, self.decoder_levels, strict=True):
            x = stage(x, skips[level])
        x = self.final_expand(self.decoder_norm(x))
        return self.head(x.permute(0, 3, 1, 2))

    def init_decoder_from_encoder(self) -> None:
        """Copy every encoder stage's Swin blocks into the decoder stage of the same width (the reference's
        ``load_from``: decoder stage 2 gets blocks 0-1 of encoder stage 2, and so on)."""
        for stage, level in zip(self.decoder, self.decoder_levels, strict=True):
            stage.stage.blocks.load_state_dict(self.encoder.layers[level].blocks.state_dict())


@register_model(family="Transformer", display_name="SwinUnet", fixed_input_size=224, hub_weights=HUB_WEIGHTS)
def swinunet(pretrained_file: PretrainedFile = None, pretrained: bool = False, **kwargs) -> nn.Module:
    """Swin-Unet (Swin-T, depths 2-2-2-2) at 224 x 224; ``pretrained``: Swin-T ImageNet weights from the Hub;
    ``pretrained_file``: a local Swin-T checkpoint (or ``{"swin": path}``) instead. Either is loaded into the
    encoder and mirrored into the decoder."""
    model = build_model_with_cfg(SwinUnet, "swinunet", PRETRAINED_CFGS, pretrained_file, pretrained, **kwargs)
    if loaded_weights(model):
        model.init_decoder_from_encoder()
    return model
