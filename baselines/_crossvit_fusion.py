"""Parts shared by HiFormer-B (``hiformer_b``) and BEFUnet (``befunet``).

Both models (Heidari et al., "HiFormer: Hierarchical Multi-scale Representations Using Transformers for
Medical Image Segmentation", WACV 2023, github.com/amirhossein-kz/HiFormer; Manzari et al., "BEFUnet: A
Hybrid CNN-Transformer Architecture for Precise Medical Image Segmentation", 2024,
github.com/Omid-Nejati/BEFUnet) share one design:

* a hybrid pyramid: a CNN branch and Swin-T stages run level by level; at every level the CNN map,
  projected to the Swin width by a 1x1 convolution, is added to the Swin tokens
  (:class:`HybridPyramidEncoder`);
* a CrossViT-style fusion of the finest and the coarsest level (HiFormer's "Double-Level Fusion",
  :class:`DoubleLevelFusion`): each level gets a class token (mean of its layer-normed tokens) and a
  learnable position embedding, goes through ViT encoders, then the class tokens are swapped,
  cross-attend to the other level's tokens and are projected back (timm's
  ``crossvit.MultiScaleBlock``);
* a light decoder that brings both levels to 1/4 resolution, adds them and upsamples to the input
  (:class:`TwoLevelDecoder`).

Deliberate difference from both reference repositories: their fusion block runs the cross-attention
first and then the ViT encoders, but returns the cross-attention output, so the encoders' results are
thrown away (HiFormer introduced this in its October 2022 commit b961abf; BEFUnet copied it). We
implement what the HiFormer paper describes and what HiFormer's code did when the paper was written
(commits up to e305869): encoders first, then cross-attention, exactly timm's CrossViT block. The
parameter count is unchanged. Note that with a single fusion block the cross-attended class tokens are
dropped before the decoder, so the cross-attention path (projections, cross-attention, back
projections) runs in the forward pass but cannot influence the output; this is a property of the
published design, kept as is.

Attention is computed with explicit matrix products (timm's fused ``scaled_dot_product_attention``
switched off), as in the references, so that fvcore counts the attention FLOPs.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import trunc_normal_
from timm.models.crossvit import MultiScaleBlock

from baselines._swin_parts import SWIN_TINY_DIMS, SwinTinyStages, disable_fused_attention, init_linear_and_norm
from models.shapes import check_fixed_size

INPUT_SIZE = 224


class HybridPyramidEncoder(nn.Module):
    """CNN levels and Swin-T stages added level by level; returns the finest and coarsest token maps.

    ``cnn`` maps the image to one feature map per level (``cnn.channels`` channels each). Level 0: the
    projected CNN map ``c0`` feeds Swin stage 0 and the result is ``c0 + stage0(c0)``. Level ``i > 0``:
    ``stage_i(previous) + projected CNN map i`` (``stage_i`` starts with a patch merging).
    Token maps are channels-last (``B x H x W x C``), as timm's Swin stages expect.
    """

    def __init__(self, cnn: nn.Module, num_stages: int, projection_stride: int = 1):
        super().__init__()
        if len(cnn.channels) != num_stages:
            raise ValueError("need one CNN level per Swin stage")
        self.cnn = cnn
        self.cnn_to_tokens = nn.ModuleList(
            nn.Conv2d(c, d, kernel_size=1, stride=projection_stride)
            for c, d in zip(cnn.channels, SWIN_TINY_DIMS[:num_stages], strict=True)
        )
        self.swin = SwinTinyStages(num_stages)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cnn_maps = self.cnn(x)
        finest = tokens = None
        for level, (fmap, project, stage) in enumerate(
            zip(cnn_maps, self.cnn_to_tokens, self.swin.layers, strict=True)
        ):
            cnn_tokens = project(fmap).permute(0, 2, 3, 1)
            if level == 0:
                tokens = finest = cnn_tokens + stage(cnn_tokens)
            else:
                tokens = stage(tokens) + cnn_tokens
        return finest, tokens


class DoubleLevelFusion(nn.Module):
    """HiFormer's Double-Level Fusion: class tokens, position embeddings, one CrossViT block, norms.

    Takes the finest and the coarsest token maps (``B x H x W x C``) and returns both as
    ``B x C x H x W`` maps (class tokens removed).
    """

    def __init__(
        self,
        dims: tuple[int, int],
        grid_sizes: tuple[int, int],
        depth: tuple[int, int, int] = (1, 2, 0),
        num_heads: tuple[int, int] = (6, 12),
        mlp_ratio: tuple[float, float, float] = (2.0, 2.0, 1.0),
        pos_embed: bool = True,
    ):
        super().__init__()
        num_tokens = tuple(g * g for g in grid_sizes)
        self.grid_sizes = grid_sizes
        # The class token of a level is the mean of its layer-normed tokens.
        self.class_token_norms = nn.ModuleList(nn.LayerNorm(d) for d in dims)
        self.pos_embeds = (
            nn.ParameterList(nn.Parameter(torch.zeros(1, 1 + n, d)) for n, d in zip(num_tokens, dims, strict=True))
            if pos_embed
            else None
        )
        self.cross_block = MultiScaleBlock(
            dim=dims,
            patches=num_tokens,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=True,
            drop_path=[0.0] * (max(depth[:-1]) + depth[-1]),
        )
        self.out_norms = nn.ModuleList(nn.LayerNorm(d) for d in dims)
        self.apply(init_linear_and_norm)
        if self.pos_embeds is not None:
            for p in self.pos_embeds:
                trunc_normal_(p, std=0.02)

    def forward(self, finest: torch.Tensor, coarsest: torch.Tensor) -> list[torch.Tensor]:
        sequences = []
        for i, tokens in enumerate((finest, coarsest)):
            tokens = tokens.flatten(1, 2)
            cls = self.class_token_norms[i](tokens).mean(dim=1, keepdim=True)
            seq = torch.cat((cls, tokens), dim=1)
            if self.pos_embeds is not None:
                seq = seq + self.pos_embeds[i]
            sequences.append(seq)
        sequences = self.cross_block(sequences)
        maps = []
        for seq, norm, g in zip(sequences, self.out_norms, self.grid_sizes, strict=True):
            patches = norm(seq[:, 1:])
            maps.append(patches.transpose(1, 2).reshape(patches.shape[0], -1, g, g))
        return maps


def conv_gn_relu(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
        nn.GroupNorm(32, out_ch),
        nn.ReLU(),
    ]


class TwoLevelDecoder(nn.Module):
    """Brings both fused levels to the finest grid (1/4), adds them, then predicts at full size.

    Finest level: conv3x3-GN-ReLU to 128 channels. Coarsest level: ``coarse_upsamplings`` times
    (conv3x3-GN-ReLU to 128, bilinear x2). Sum, 1x1 conv to 16 + ReLU, bilinear x4, 3x3 conv head.
    """

    def __init__(self, fine_dim: int, coarse_dim: int, coarse_upsamplings: int, num_classes: int = 1, width: int = 128):
        super().__init__()
        self.fine_branch = nn.Sequential(*conv_gn_relu(fine_dim, width))
        coarse: list[nn.Module] = []
        for i in range(coarse_upsamplings):
            coarse += conv_gn_relu(coarse_dim if i == 0 else width, width)
            coarse.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
        self.coarse_branch = nn.Sequential(*coarse)
        self.to_full_resolution = nn.Sequential(
            nn.Conv2d(width, 16, kernel_size=1),
            nn.ReLU(),
            nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False),
        )
        self.head = nn.Conv2d(16, num_classes, kernel_size=3, padding=1)

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        x = self.fine_branch(fine) + self.coarse_branch(coarse)
        return self.head(self.to_full_resolution(x))


class HybridFusionSegmenter(nn.Module):
    """``cnn`` + the first ``num_swin_stages`` Swin-T stages -> double-level fusion of the finest (1/4) and
    the coarsest level -> decoder; for 224 x 224 inputs (position embeddings and Swin windows are built
    for it). HiFormer-B and BEFUnet differ only in their CNN branch and in the number of stages."""

    def __init__(
        self,
        cnn: nn.Module,
        num_swin_stages: int,
        display_name: str,
        num_classes: int = 1,
        projection_stride: int = 1,
        cross_pos_embed: bool = True,
    ):
        super().__init__()
        self.display_name = display_name
        fine, coarse = SWIN_TINY_DIMS[0], SWIN_TINY_DIMS[num_swin_stages - 1]
        coarse_upsamplings = num_swin_stages - 1
        self.encoder = HybridPyramidEncoder(cnn, num_swin_stages, projection_stride)
        self.fusion = DoubleLevelFusion(
            dims=(fine, coarse),
            grid_sizes=(INPUT_SIZE // 4, INPUT_SIZE // 4 // 2**coarse_upsamplings),
            pos_embed=cross_pos_embed,
        )
        self.decoder = TwoLevelDecoder(fine, coarse, coarse_upsamplings, num_classes=num_classes)
        disable_fused_attention(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_fixed_size(x, INPUT_SIZE, self.display_name)
        fine, coarse = self.fusion(*self.encoder(x))
        return self.decoder(fine, coarse)
