"""MISSFormer (Huang et al., "MISSFormer: An Effective Transformer for 2D Medical Image Segmentation",
IEEE TMI 2022, arXiv:2109.07162), one output channel.

Reference implementation: https://github.com/ZhifangDeng/MISSFormer (``networks/MISSFormer.py`` and
``networks/segformer.py``). Structure, as in the reference:

* encoder: a four-stage Mix-Transformer (dims 64, 128, 320, 512; two blocks per stage; heads 1, 2, 5, 8;
  spatial-reduction ratios 8, 4, 2, 1) whose feed-forward is the "Enhanced Mix-FFN"
  (fc1 -> depth-wise 3x3 conv + skip -> LayerNorm -> GELU -> fc2);
* "Enhanced Transformer Context Bridge": the four encoder maps are cut into 64-channel tokens and
  concatenated; four bridge layers run one attention over all of them (keys/values reduced per level) and
  a per-level Enhanced Mix-FFN;
* decoder: patch expanding (linear + 2x2 pixel shuffle, channels last), skip concatenation + linear, two
  Mix-Transformer blocks per stage, a final 4x patch expanding and a 1x1 convolution.

The reference is tied to 224 x 224 inputs (hard-coded token counts); so is this model.

Deliberate differences from the reference:

* Modules that the reference builds but its forward never runs are not built: the deepest decoder
  layer's skip linear and two transformer blocks (it only patch-expands the bottleneck) and the two
  unused LayerNorms of every Enhanced Mix-FFN. 35,452,225 live parameters of the 42,462,017 built.
* No pretrained backbone: the reference trains from scratch (its MiT is not SegFormer's MiT).

Kept on purpose: the reference evaluates ``fc1`` twice in every Enhanced Mix-FFN (once for the
convolution branch, once for the skip). The result is the same as one evaluation; we keep both calls so
that the measured cost (fvcore 9.86 GMac at 224) is the reference's. The initialisation follows the
reference too: PyTorch defaults in the encoder and bridge, Xavier-uniform in the decoder.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from baselines._swin_parts import PatchExpand
from models.pretrained import PretrainedFile, build_model_with_cfg
from models.registry import ModelArgumentError, register_model
from models.shapes import check_fixed_size

ENCODER_DIMS = (64, 128, 320, 512)
ENCODER_HEADS = (1, 2, 5, 8)
SPATIAL_REDUCTION = (8, 4, 2, 1)
BLOCKS_PER_STAGE = 2
BRIDGE_LAYERS = 4
# Widths of the skip-fusing decoder stages, deep (encoder level 2) to shallow (level 0).
DECODER_DIMS = (320, 128, 64)


def tokens_to_map(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, H*W, C) tokens -> (B, C, H, W) map."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)


class DepthwiseConvTokens(nn.Module):
    """3x3 depth-wise convolution applied to a token sequence laid out on an h x w grid."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return self.conv(tokens_to_map(x, h, w)).flatten(2).transpose(1, 2)


class EnhancedMixFFN(nn.Module):
    """fc1 -> LayerNorm(dwconv(.) + skip) -> GELU -> fc2 (the paper's Enhanced Mix-FFN)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = DepthwiseConvTokens(hidden_dim)
        self.norm = nn.LayerNorm(hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        # Two evaluations of fc1, as in the reference (same values; keeps its measured cost).
        hidden = self.dwconv(self.fc1(x), h, w) + self.fc1(x)
        return self.fc2(self.act(self.norm(hidden)))


def attend(
    x: torch.Tensor,
    context: torch.Tensor,
    q: nn.Linear,
    kv: nn.Linear,
    proj: nn.Linear,
    *,
    heads: int,
    scale: float,
) -> torch.Tensor:
    """Plain multi-head attention of queries from ``x`` over keys/values from ``context``.

    Written with explicit matmuls (as the reference) so that fvcore counts the attention products.
    """
    b, n, c = x.shape
    query = q(x).reshape(b, n, heads, c // heads).transpose(1, 2)
    key, value = kv(context).reshape(b, -1, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
    weights = ((query @ key.transpose(-2, -1)) * scale).softmax(dim=-1)
    return proj((weights @ value).transpose(1, 2).reshape(b, n, c))


class SpatialReductionAttention(nn.Module):
    """Multi-head self-attention whose keys and values come from a strided-conv-reduced grid."""

    def __init__(self, dim: int, num_heads: int, reduction: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.reduction = reduction
        if reduction > 1:
            self.reduce = nn.Conv2d(dim, dim, reduction, stride=reduction)
            self.reduce_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        context = x
        if self.reduction > 1:
            context = self.reduce_norm(self.reduce(tokens_to_map(x, h, w)).flatten(2).transpose(1, 2))
        return attend(x, context, self.q, self.kv, self.proj, heads=self.num_heads, scale=self.scale)


class MixTransformerBlock(nn.Module):
    """Pre-norm block: spatial-reduction attention, then Enhanced Mix-FFN (hidden = 4 x dim)."""

    def __init__(self, dim: int, num_heads: int, reduction: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SpatialReductionAttention(dim, num_heads, reduction)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = EnhancedMixFFN(dim, 4 * dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.ffn(self.norm2(x), h, w)


class OverlapPatchEmbed(nn.Module):
    """Strided convolution with overlapping windows, then LayerNorm over tokens."""

    def __init__(self, in_dim: int, dim: int, kernel: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(in_dim, dim, kernel, stride=stride, padding=kernel // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class EncoderStage(nn.Module):
    """Patch embedding, Mix-Transformer blocks and a closing LayerNorm."""

    def __init__(self, in_dim: int, dim: int, num_heads: int, reduction: int, first: bool):
        super().__init__()
        self.embed = OverlapPatchEmbed(in_dim, dim, kernel=7 if first else 3, stride=4 if first else 2)
        self.blocks = nn.ModuleList(MixTransformerBlock(dim, num_heads, reduction) for _ in range(BLOCKS_PER_STAGE))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x, h, w = self.embed(x)
        for block in self.blocks:
            x = block(x, h, w)
        return self.norm(x), h, w


class MixTransformerEncoder(nn.Module):
    """Four stages at strides 4, 8, 16, 32; returns the channels-last tokens of every stage."""

    def __init__(self):
        super().__init__()
        in_dims = (3, *ENCODER_DIMS[:-1])
        self.stages = nn.ModuleList(
            EncoderStage(i, d, nh, r, first=k == 0)
            for k, (i, d, nh, r) in enumerate(zip(in_dims, ENCODER_DIMS, ENCODER_HEADS, SPATIAL_REDUCTION, strict=True))
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            tokens, h, w = stage(x)
            features.append(tokens)
            x = tokens_to_map(tokens, h, w)
        return features


def split_levels(x: torch.Tensor, level_dims, level_sizes) -> list[torch.Tensor]:
    """Split concatenated 64-channel bridge tokens back into the per-level chunks."""
    base = x.shape[-1]
    lengths = [s * s * d // base for d, s in zip(level_dims, level_sizes, strict=True)]
    return list(torch.split(x, lengths, dim=1))


class MultiLevelReducedAttention(nn.Module):
    """Attention over the concatenated 64-channel tokens of all levels.

    Keys and values: each level is put back on its grid (with its own channel count), reduced by a
    strided convolution (ratio 1 = kept as is), read back as 64-channel tokens in the reference's
    channel-major order, concatenated and normalised.
    """

    def __init__(self, base_dim: int, level_dims, level_sizes, reductions):
        super().__init__()
        self.level_dims, self.level_sizes = tuple(level_dims), tuple(level_sizes)
        self.scale = base_dim**-0.5  # one head
        self.q = nn.Linear(base_dim, base_dim)
        self.kv = nn.Linear(base_dim, 2 * base_dim)
        self.proj = nn.Linear(base_dim, base_dim)
        self.reducers = nn.ModuleList(
            nn.Conv2d(d, d, r, stride=r) if r > 1 else nn.Identity()
            for d, r in zip(level_dims, reductions, strict=True)
        )
        self.norm = nn.LayerNorm(base_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        reduced = []
        for tokens, dim, size, reducer in zip(
            split_levels(x, self.level_dims, self.level_sizes),
            self.level_dims,
            self.level_sizes,
            self.reducers,
            strict=True,
        ):
            if isinstance(reducer, nn.Identity):
                reduced.append(tokens)
                continue
            grid = tokens.reshape(b, size, size, dim).permute(0, 3, 1, 2)
            reduced.append(reducer(grid).reshape(b, c, -1).transpose(1, 2))
        context = self.norm(torch.cat(reduced, dim=1))
        return attend(x, context, self.q, self.kv, self.proj, heads=1, scale=self.scale)


class ContextBridgeLayer(nn.Module):
    """One layer of the Enhanced Transformer Context Bridge."""

    def __init__(self, base_dim: int, level_dims, level_sizes, reductions):
        super().__init__()
        self.level_dims, self.level_sizes = tuple(level_dims), tuple(level_sizes)
        self.norm1 = nn.LayerNorm(base_dim)
        self.attn = MultiLevelReducedAttention(base_dim, level_dims, level_sizes, reductions)
        self.norm2 = nn.LayerNorm(base_dim)
        self.ffns = nn.ModuleList(EnhancedMixFFN(d, 4 * d) for d in level_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        x = x + self.attn(self.norm1(x))
        mixed = []
        for tokens, dim, size, ffn in zip(
            split_levels(self.norm2(x), self.level_dims, self.level_sizes),
            self.level_dims,
            self.level_sizes,
            self.ffns,
            strict=True,
        ):
            mixed.append(ffn(tokens.reshape(b, -1, dim), size, size).reshape(b, -1, c))
        return x + torch.cat(mixed, dim=1)


class ContextBridge(nn.Module):
    """Cuts every level into ``base_dim``-channel tokens, runs the bridge layers, and splits back."""

    def __init__(self, img_size: int, num_layers: int = BRIDGE_LAYERS):
        super().__init__()
        self.base_dim = ENCODER_DIMS[0]
        self.level_sizes = tuple(img_size // s for s in (4, 8, 16, 32))
        self.layers = nn.ModuleList(
            ContextBridgeLayer(self.base_dim, ENCODER_DIMS, self.level_sizes, SPATIAL_REDUCTION)
            for _ in range(num_layers)
        )

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        b = features[0].shape[0]
        x = torch.cat([f.reshape(b, -1, self.base_dim) for f in features], dim=1)
        for layer in self.layers:
            x = layer(x)
        chunks = split_levels(x, ENCODER_DIMS, self.level_sizes)
        return [chunk.reshape(b, -1, dim) for chunk, dim in zip(chunks, ENCODER_DIMS, strict=True)]


def expand_tokens(expand: PatchExpand, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Patch expanding of (B, h*w, C) tokens laid out on an h x w grid; returns tokens again."""
    return expand(x.reshape(x.shape[0], h, w, -1)).flatten(1, 2)


class DecoderStage(nn.Module):
    """Concatenate [upsampled, skip] -> linear -> two Mix-Transformer blocks -> patch expanding."""

    def __init__(self, up_dim: int, skip_dim: int, dim: int, num_heads: int, reduction: int, last: bool):
        super().__init__()
        self.fuse = nn.Linear(up_dim + skip_dim, dim)
        self.blocks = nn.ModuleList(MixTransformerBlock(dim, num_heads, reduction) for _ in range(BLOCKS_PER_STAGE))
        self.expand = PatchExpand(dim, dim, 4) if last else PatchExpand(dim, dim // 2, 2)

    def forward(self, up: torch.Tensor, skip: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = self.fuse(torch.cat([up, skip], dim=-1))
        for block in self.blocks:
            x = block(x, h, w)
        return expand_tokens(self.expand, x, h, w)


def xavier_init(module: nn.Module) -> None:
    """The reference decoder's initialisation: Xavier-uniform weights, zero biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class MISSFormer(nn.Module):
    """MISSFormer for ``img_size`` x ``img_size`` inputs (the reference: 224)."""

    def __init__(self, num_classes: int = 1, img_size: int = 224):
        super().__init__()
        if img_size % 32:
            raise ModelArgumentError(f"MISSFormer needs an image size divisible by 32, got {img_size}")
        self.img_size = img_size
        self.encoder = MixTransformerEncoder()
        self.bridge = ContextBridge(img_size)
        self.bottleneck_expand = PatchExpand(ENCODER_DIMS[3], ENCODER_DIMS[3] // 2, 2)
        up_dims = (ENCODER_DIMS[3] // 2, *(d // 2 for d in DECODER_DIMS[:-1]))
        levels = (2, 1, 0)
        self.decoder = nn.ModuleList(
            DecoderStage(
                up,
                ENCODER_DIMS[k],
                dim,
                ENCODER_HEADS[k],
                SPATIAL_REDUCTION[k],
                last=k == 0,
            )
            for up, dim, k in zip(up_dims, DECODER_DIMS, levels, strict=True)
        )
        self.head = nn.Conv2d(DECODER_DIMS[-1], num_classes, 1)
        for module in (self.bottleneck_expand, self.decoder, self.head):
            xavier_init(module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_fixed_size(x, self.img_size, "MISSFormer")
        skips = self.bridge(self.encoder(x))
        size = self.img_size // 32
        x = expand_tokens(self.bottleneck_expand, skips[3], size, size)
        for stage, skip in zip(self.decoder, reversed(skips[:3]), strict=True):
            size *= 2
            x = stage(x, skip, size, size)
        out = self.img_size
        return self.head(x.transpose(1, 2).reshape(x.shape[0], -1, out, out))


@register_model(family="Transformer", display_name="MISSFormer", fixed_input_size=224)
def missformer(pretrained_file: PretrainedFile = None, **kwargs) -> nn.Module:
    """MISSFormer at 224 x 224, trained from scratch as in the reference (its encoder is not SegFormer's
    MiT and has no published ImageNet weights)."""
    return build_model_with_cfg(MISSFormer, "missformer", {}, pretrained_file, **kwargs)
