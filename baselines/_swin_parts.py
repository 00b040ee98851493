"""Swin pieces shared by Swin-Unet, MISSFormer, HiFormer-B and BEFUnet.

* :class:`SwinTinyStages` and :func:`swin_tiny_pretrained_cfg`: the first stages of timm's Swin-T and the
  mapping of a Swin-T ImageNet checkpoint (timm's or Microsoft's original layout) onto any model that
  keeps only some of its stages and blocks;
* :class:`PatchExpand`: Swin-Unet's patch expanding (MISSFormer uses the same layer);
* :func:`init_linear_and_norm` and :func:`disable_fused_attention`.
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn
from timm.layers import trunc_normal_
from timm.models.swin_transformer import SwinTransformer
from timm.models.swin_transformer import checkpoint_filter_fn as timm_swin_filter

from models.pretrained import PretrainedCfg, StateDict

SWIN_TINY = "swin_tiny_patch4_window7_224"
SWIN_TINY_DIMS = (96, 192, 384, 768)
SWIN_TINY_DEPTHS = (2, 2, 6, 2)
SWIN_TINY_HEADS = (3, 6, 12, 24)


class SwinTinyStages(nn.Module):
    """The first ``num_stages`` stages of timm's Swin-T (224 input, window 7) as ``layers``, without patch
    embedding, final norm or classifier; the key names are timm's.

    Stage ``i > 0`` starts with the patch merging that the original Swin code puts at the end of stage
    ``i - 1``. Stochastic depth grows linearly to ``drop_path_rate`` over the kept blocks.
    """

    def __init__(self, num_stages: int, drop_path_rate: float = 0.1):
        super().__init__()
        swin = SwinTransformer(
            img_size=224,
            patch_size=4,
            embed_dim=SWIN_TINY_DIMS[0],
            depths=SWIN_TINY_DEPTHS[:num_stages],
            num_heads=SWIN_TINY_HEADS[:num_stages],
            window_size=7,
            drop_path_rate=drop_path_rate,
            num_classes=0,
        )
        self.layers = swin.layers


def swin_checkpoint_filter(state: StateDict, module: nn.Module) -> StateDict:
    """timm's Swin ``checkpoint_filter_fn`` (Microsoft's layout to timm's) for a ``module`` that keeps only
    some of the checkpoint's stages, blocks and parts: those it lacks are dropped first, because timm's
    filter looks up the module of every block and patch embedding it converts."""
    present = {name for name, _ in module.named_modules()}

    def kept(key: str) -> bool:
        block = re.match(r"layers\.\d+\.blocks\.\d+", key)
        if block:
            return block[0] in present
        return not key.startswith("patch_embed.") or "patch_embed" in present

    return timm_swin_filter({k: v for k, v in state.items() if kept(k)}, module)


def swin_tiny_pretrained_cfg(module: str, hub: str | None = None) -> PretrainedCfg:
    """A Swin-T ImageNet checkpoint for the timm Swin stages at ``module`` (which has them as ``layers``);
    ``hub``: timm ``model.tag`` of the Hub weights (``swin_tiny_patch4_window7_224.ms_in1k``: Microsoft's)."""
    return PretrainedCfg(
        SWIN_TINY,
        module=module,
        filter_fn=swin_checkpoint_filter,
        unused=("patch_embed.", "absolute_pos_embed", "layers.", "norm.", "head."),
        hub=hub,
    )


class PatchExpand(nn.Module):
    """Channels-last (B, H, W, C) upsampling: linear to ``scale**2 * out_dim``, pixel shuffle, LayerNorm."""

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


def init_linear_and_norm(m: nn.Module) -> None:
    """Swin's and ViT's initialisation (use with ``module.apply``): truncated normal (std 0.02) linear
    weights, zero biases, unit LayerNorms."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def disable_fused_attention(module: nn.Module) -> None:
    """Make every timm attention layer in ``module`` use explicit matmuls (same result; fvcore counts them)."""
    for sub in module.modules():
        if hasattr(sub, "fused_attn"):
            sub.fused_attn = False
