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

``pretrained_file``: a local Swin-T ImageNet checkpoint, as timm ``swin_tiny_patch4_window7_224``
``state_dict`` (the original Microsoft ``{"model": ...}`` file works too: its keys are mapped to timm's
layout). As in the reference's ``load_from``, the encoder takes the matching tensors (stage 2 gets blocks
0-1 of Swin-T's six; the classifier is dropped) and every decoder stage's blocks are initialised from the
encoder stage of the same width (mirrored). Unlike the reference, which loads with ``strict=False``
silently, a file that leaves any encoder tensor unset is rejected.
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn
from timm.layers import calculate_drop_path_rates, trunc_normal_
from timm.models.swin_transformer import SwinTransformer, SwinTransformerStage

from models.registry import register_model
from models.shapes import check_fixed_size


class PatchExpand(nn.Module):
    """Channels-last upsampling: linear to ``scale**2 * out_dim``, pixel shuffle, LayerNorm(out_dim)."""

    def __init__(self, dim: int, out_dim: int, scale: int):
        super().__init__()
        self.scale = scale
        self.expand = nn.Linear(dim, scale * scale * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        s = self.scale
        x = self.expand(x).reshape(b, h, w, s, s, -1).permute(0, 1, 3, 2, 4, 5)
        return self.norm(x.reshape(b, h * s, w * s, -1))


class DecoderStage(nn.Module):
    """Concatenate [upsampled, skip] -> linear to ``dim`` -> Swin blocks -> optional patch expanding."""

    def __init__(
        self,
        dim: int,
        resolution: int,
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
            module.apply(_init_linear_and_norm)

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

    def load_swin_checkpoint(self, path: str) -> None:
        """Load a local Swin ImageNet checkpoint into the encoder and mirror it into the decoder."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        for wrapper in ("model", "state_dict"):
            state = state.get(wrapper, state)
        state = to_timm_swin_layout(state)
        target = self.encoder.state_dict()
        picked = {k: v for k, v in state.items() if k in target and v.shape == target[k].shape}
        unset = sorted(set(target) - set(picked))
        if unset:
            raise ValueError(f"{path} is not a Swin checkpoint matching this encoder; missing or mis-shaped: {unset}")
        self.encoder.load_state_dict(picked)
        for stage, level in zip(self.decoder, self.decoder_levels, strict=True):
            prefix = f"layers.{level}.blocks."
            stage.stage.blocks.load_state_dict({k[len(prefix) :]: v for k, v in picked.items() if k.startswith(prefix)})


def to_timm_swin_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an original (Microsoft) Swin state dict to timm's layout; timm files pass unchanged.

    The original puts each stage's patch merging at its end (``layers.k.downsample``), timm at the start
    of the next stage (``layers.{k+1}.downsample``); the same test as timm's ``checkpoint_filter_fn``.
    """
    if "layers.0.downsample.reduction.weight" not in state:
        return dict(state)
    return {
        re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m[1]) + 1}.downsample", k): v
        for k, v in state.items()
    }


def _init_linear_and_norm(m: nn.Module) -> None:
    # The reference's SwinTransformerSys._init_weights (timm's encoder does the same to its own layers).
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


@register_model(family="Transformer", display_name="SwinUnet", fixed_input_size=224)
def swinunet(pretrained_file: str | None = None, **kwargs) -> nn.Module:
    """Swin-Unet (Swin-T, depths 2-2-2-2) at 224 x 224; ``pretrained_file``: a local Swin-T checkpoint."""
    model = SwinUnet(num_classes=1, **kwargs)
    if pretrained_file is not None:
        model.load_swin_checkpoint(pretrained_file)
    return model
