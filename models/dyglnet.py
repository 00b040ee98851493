"""DyGLNet (Zhao et al., Pattern Recognition 2025): hybrid global-local encoder, dynamic-upsampling decoder.

Written from the paper and the structure of the authors' release (GitHub ``YeeCan-Zhao/DyGLNet``).
The default :class:`DyGLNetConfig` is the released configuration (``SHViT_s1_cfg``): 9,980,098
parameters. The seven Table 6 ablation variants are named configurations of the same class
(registered at the bottom of this file); ``load_authors_state_dict`` maps a state dict saved by the
release onto this implementation.

Shape of the network (B = batch, input H x W with H, W divisible by 16)::

    stem      3 -> 16 -> 32 [skip0, 1/1] -> 64 [skip1, 1/2] -> 128 (1/4)
    stage 1   hybrid blocks without mixer at 128 ch            [skip2, 1/4]
    stage 2   inverted downsample 128 -> 224, hybrid blocks     [skip3, 1/8]
    stage 3   inverted downsample 224 -> 320, hybrid blocks     (1/16)
    decoder   four fusion-upsampling units 320 -> 224 -> 128 -> 64 -> 32, then a 1x1 head
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import SqueezeExcite

from models.dyglnet_variants import ABLATION_VARIANTS
from models.pretrained import PretrainedFile, build_model_with_cfg
from models.registry import ModelArgumentError, register_model
from models.shapes import check_divisible

Upsampler = Literal["dysample", "bilinear", "tconv"]
AttnNorm = Literal["dyt", "batchnorm", "groupnorm", "none"]


@dataclass(frozen=True)
class DyGLNetConfig:
    """Every architectural setting of DyGLNet; the defaults are the authors' released model."""

    widths: tuple[int, int, int] = (128, 224, 320)
    depths: tuple[int, int, int] = (2, 4, 5)
    # Channels of each stage routed to the single-head attention (the rest go to the dilated branch).
    attn_channels: tuple[int, int, int] = (32, 48, 68)
    qk_dim: tuple[int, int, int] = (16, 16, 16)
    # Whether a stage's blocks carry the SHDC mixer (the release: stage 1 without, stages 2-3 with).
    mixer_stages: tuple[bool, bool, bool] = (False, True, True)
    stem_widths: tuple[int, int, int] = (16, 32, 64)
    in_channels: int = 3
    num_classes: int = 1
    # --- switches used by the Table 6 ablations -------------------------------------------------
    upsampler: Upsampler = "dysample"
    dysample_groups: int = 4
    attn_norm: AttnNorm = "dyt"
    dyt_alpha_init: float = 0.5
    use_attention: bool = True
    # Dilation rates of the depthwise convolutions in the encoder's SHDC local branch; () removes them.
    mixer_dilations: tuple[int, ...] = (1, 2, 3)
    # The decoder's fusion block uses the same dilated block; the "w/o DC" ablation keeps it.
    decoder_dilations: tuple[int, ...] = (1, 2, 3)
    se_ratio: float = 0.25

    def __post_init__(self):
        for width, attn in zip(self.widths, self.attn_channels, strict=True):
            if not 0 < attn < width:
                raise ModelArgumentError(
                    f"attn_channels {self.attn_channels} must lie in (0, width) for widths {self.widths}"
                )
        if self.upsampler not in ("dysample", "bilinear", "tconv"):
            raise ModelArgumentError(f"upsampler must be dysample, bilinear or tconv, got {self.upsampler!r}")
        if self.attn_norm not in ("dyt", "batchnorm", "groupnorm", "none"):
            raise ModelArgumentError(f"attn_norm must be dyt, batchnorm, groupnorm or none, got {self.attn_norm!r}")


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------


class ConvBNGELU(nn.Sequential):
    """Bias-free convolution, BatchNorm, GELU: the release's basic unit (its GELU is always on)."""

    def __init__(self, cin, cout, kernel=1, *, stride=1, dilation=1, groups=1, bn_init: float = 1.0):
        super().__init__()
        self.conv = nn.Conv2d(
            cin,
            cout,
            kernel,
            stride,
            padding=dilation * (kernel - 1) // 2,
            dilation=dilation,
            groups=groups,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.GELU()
        nn.init.constant_(self.bn.weight, bn_init)
        nn.init.zeros_(self.bn.bias)


class DyT(nn.Module):
    """Dynamic Tanh normalisation: ``tanh(alpha * x) * gamma + beta`` (scalar alpha, per-channel affine)."""

    def __init__(self, channels: int, alpha_init: float = 0.5):
        super().__init__()
        self.alpha = nn.Parameter(torch.full((1,), alpha_init))
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return torch.tanh(self.alpha * x) * self.weight[:, None, None] + self.bias[:, None, None]


def make_attn_norm(kind: AttnNorm, channels: int, alpha_init: float) -> nn.Module:
    """The normalisation in front of the attention branch (DyT in the paper; others for "w/o DyT")."""
    if kind == "dyt":
        return DyT(channels, alpha_init)
    if kind == "batchnorm":
        return nn.BatchNorm2d(channels)
    if kind == "groupnorm":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


class DilatedLocalBlock(nn.Module):
    """Multi-dilation depthwise token mixing, squeeze-excitation, then a residual channel MLP.

    ``norm(x + sum_d dwconv_d(x))`` -> SE -> ``+ mlp(.)``; with no dilations the token mixing is
    ``norm(x)``. The release calls it a dilated depthwise block; it is the local branch of the SHDC
    mixer and the fusion block of every decoder unit.
    """

    def __init__(self, channels: int, dilations: Sequence[int] = (1, 2, 3), se_ratio: float = 0.25):
        super().__init__()
        self.dilated = nn.ModuleList(ConvBNGELU(channels, channels, 3, dilation=d, groups=channels) for d in dilations)
        self.norm = nn.BatchNorm2d(channels)
        self.se = SqueezeExcite(channels, se_ratio)
        self.mlp_in = ConvBNGELU(channels, 2 * channels)
        self.mlp_act = nn.GELU()
        self.mlp_out = ConvBNGELU(2 * channels, channels, bn_init=0.0)

    def forward(self, x):
        mixed = x
        for conv in self.dilated:
            mixed = mixed + conv(x)
        y = self.se(self.norm(mixed))
        return y + self.mlp_out(self.mlp_act(self.mlp_in(y)))


class SingleHeadAttention(nn.Module):
    """Global branch: normalisation, 1x1 q/k/v projection, one attention head over all H*W positions."""

    def __init__(self, channels: int, qk_dim: int, norm: AttnNorm, alpha_init: float):
        super().__init__()
        self.qk_dim = qk_dim
        self.scale = qk_dim**-0.5
        self.norm = make_attn_norm(norm, channels, alpha_init)
        self.qkv = ConvBNGELU(channels, 2 * qk_dim + channels)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).flatten(2).split([self.qk_dim, self.qk_dim, c], dim=1)
        attn = (q.transpose(1, 2) @ k * self.scale).softmax(dim=-1)  # B x N(query) x N(key)
        return (v @ attn.transpose(1, 2)).view(b, c, h, w)


class SHDCMixer(nn.Module):
    """Single-head attention on the first ``attn_channels`` channels, dilated local block on the rest,
    concatenated, ReLU, and a 1x1 fusion conv."""

    def __init__(self, channels: int, attn_channels: int, qk_dim: int, cfg: DyGLNetConfig):
        super().__init__()
        self.attn_channels = attn_channels
        self.attn = (
            SingleHeadAttention(attn_channels, qk_dim, cfg.attn_norm, cfg.dyt_alpha_init)
            if cfg.use_attention
            else nn.Identity()  # "w/o SA": the global channels pass through unchanged
        )
        self.local = DilatedLocalBlock(channels - attn_channels, cfg.mixer_dilations, cfg.se_ratio)
        self.fuse_act = nn.ReLU()
        self.fuse = ConvBNGELU(channels, channels)

    def forward(self, x):
        x_global, x_local = x.split([self.attn_channels, x.shape[1] - self.attn_channels], dim=1)
        return self.fuse(self.fuse_act(torch.cat([self.attn(x_global), self.local(x_local)], dim=1)))


class ConvFFN(nn.Module):
    """1x1 expansion to 2C, ReLU, 1x1 projection back to C."""

    def __init__(self, channels: int):
        super().__init__()
        self.expand = ConvBNGELU(channels, 2 * channels)
        self.act = nn.ReLU()
        self.project = ConvBNGELU(2 * channels, channels)

    def forward(self, x):
        return self.project(self.act(self.expand(x)))


class HybridBlock(nn.Module):
    """Residual depthwise 3x3 conv, optional residual SHDC mixer, residual FFN."""

    def __init__(self, channels: int, attn_channels: int, qk_dim: int, with_mixer: bool, cfg: DyGLNetConfig):
        super().__init__()
        self.local_conv = ConvBNGELU(channels, channels, 3, groups=channels)
        self.mixer = SHDCMixer(channels, attn_channels, qk_dim, cfg) if with_mixer else None
        self.ffn = ConvFFN(channels)

    def forward(self, x):
        x = x + self.local_conv(x)
        if self.mixer is not None:
            x = x + self.mixer(x)
        return x + self.ffn(x)


class InvertedDownsample(nn.Sequential):
    """Stride-2 inverted bottleneck between stages: 1x1 expand x4, ReLU, depthwise 3x3/2, SE, 1x1."""

    def __init__(self, cin: int, cout: int, se_ratio: float = 0.25):
        hidden = 4 * cin
        super().__init__()
        self.expand = ConvBNGELU(cin, hidden)
        self.act = nn.ReLU()
        self.dw = ConvBNGELU(hidden, hidden, 3, stride=2, groups=hidden)
        self.se = SqueezeExcite(hidden, se_ratio)
        self.project = ConvBNGELU(hidden, cout)


class EncoderStage(nn.Module):
    """Optional downsampling followed by ``depth`` hybrid blocks."""

    def __init__(self, cin, cout, depth, *, attn_channels, qk_dim, with_mixer, cfg: DyGLNetConfig):
        super().__init__()
        self.downsample = InvertedDownsample(cin, cout, cfg.se_ratio) if cin != cout else None
        self.blocks = nn.Sequential(*(HybridBlock(cout, attn_channels, qk_dim, with_mixer, cfg) for _ in range(depth)))

    def forward(self, x):
        if self.downsample is not None:
            x = self.downsample(x)
        return self.blocks(x)


class Stem(nn.Module):
    """Four conv-BN units (the last two with stride 2).

    Returns ``(skip_full, skip_half, out)``: the full- and half-resolution skips and the quarter-resolution map
    that enters the encoder.
    """

    def __init__(self, cin: int, widths: tuple[int, int, int], cout: int):
        super().__init__()
        w1, w2, w3 = widths
        self.conv1 = ConvBNGELU(cin, w1, 3)
        self.conv2 = ConvBNGELU(w1, w2, 3)
        self.conv3 = ConvBNGELU(w2, w3, 3, stride=2)
        self.conv4 = ConvBNGELU(w3, cout, 3, stride=2)

    def forward(self, x):
        skip_full = F.relu(self.conv2(F.relu(self.conv1(x))))
        skip_half = F.relu(self.conv3(skip_full))
        return skip_full, skip_half, self.conv4(skip_half)


# ----------------------------------------------------------------------------------------------
# Decoder
# ----------------------------------------------------------------------------------------------


def subpixel_offsets(scale: int, groups: int) -> torch.Tensor:
    """Initial (x, y) offsets of the ``scale**2`` sub-pixels of every group, shaped 1 x 2*G*s*s x 1 x 1."""
    steps = (torch.arange(scale) - (scale - 1) / 2) / scale
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")
    grid = torch.stack([dx, dy])[:, None].expand(2, groups, scale, scale)
    return grid.reshape(1, -1, 1, 1).clone()


class DynamicUpsample(nn.Module):
    """DySample ("lp" style) x2: point-wise predicted sampling offsets, grouped bilinear resampling,
    then a 1x1 conv halving the channels."""

    def __init__(self, channels: int, groups: int = 4, scale: int = 2):
        super().__init__()
        if channels % groups:
            raise ValueError(f"DynamicUpsample: {channels} channels are not divisible into {groups} groups")
        self.groups, self.scale = groups, scale
        self.offset = nn.Conv2d(channels, 2 * groups * scale * scale, 1)
        nn.init.normal_(self.offset.weight, std=0.001)
        nn.init.zeros_(self.offset.bias)
        self.register_buffer("base_offsets", subpixel_offsets(scale, groups))
        self.reduce = nn.Conv2d(channels, channels // 2, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        s, g = self.scale, self.groups
        offsets = (self.offset(x) * 0.25 + self.base_offsets).view(b, 2, g * s * s, h, w)
        ys, xs = torch.meshgrid(
            torch.arange(h, device=x.device, dtype=x.dtype) + 0.5,
            torch.arange(w, device=x.device, dtype=x.dtype) + 0.5,
            indexing="ij",
        )
        centres = torch.stack([xs, ys])[None, :, None]  # 1 x 2 x 1 x H x W
        extent = torch.tensor([w, h], device=x.device, dtype=x.dtype).view(1, 2, 1, 1, 1)
        positions = 2 * (centres + offsets) / extent - 1
        positions = F.pixel_shuffle(positions.reshape(b, -1, h, w), s)  # B x 2G x sH x sW
        grid = positions.view(b, 2, g, s * h, s * w).permute(0, 2, 3, 4, 1).reshape(b * g, s * h, s * w, 2)
        sampled = F.grid_sample(
            x.reshape(b * g, c // g, h, w), grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        return self.reduce(sampled.view(b, c, s * h, s * w))


class BilinearUpsample(nn.Module):
    """Ablation "w BiIn": fixed bilinear x2 interpolation, then the same 1x1 conv halving the channels."""

    def __init__(self, channels: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, channels // 2, 1)

    def forward(self, x):
        return self.reduce(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))


def make_upsampler(kind: Upsampler, channels: int, groups: int) -> nn.Module:
    """A x2 upsampler mapping ``channels`` to ``channels // 2``."""
    if kind == "dysample":
        return DynamicUpsample(channels, groups)
    if kind == "bilinear":
        return BilinearUpsample(channels)
    return nn.ConvTranspose2d(channels, channels // 2, kernel_size=2, stride=2)  # "w TConv"


class FusionUp(nn.Module):
    """DyFusionUp: upsample the deep features x2, align them to the skip's width, concatenate,
    fuse with a dilated local block and a 3x3 conv."""

    def __init__(self, skip_channels: int, deep_channels: int, cfg: DyGLNetConfig):
        super().__init__()
        self.upsample = make_upsampler(cfg.upsampler, deep_channels, cfg.dysample_groups)
        self.align = nn.Conv2d(deep_channels // 2, skip_channels, 1)
        self.fuse = DilatedLocalBlock(2 * skip_channels, cfg.decoder_dilations, cfg.se_ratio)
        self.out = nn.Conv2d(2 * skip_channels, skip_channels, 3, padding=1)

    def forward(self, skip, deep):
        up = self.align(self.upsample(deep))
        return self.out(self.fuse(torch.cat([skip, up], dim=1)))


# ----------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------


class DyGLNet(nn.Module):
    """DyGLNet; ``DyGLNet()`` is the released model (3-channel input, 1 channel of logits)."""

    size_divisor = 16

    def __init__(self, cfg: DyGLNetConfig | None = None, **overrides):
        super().__init__()
        cfg = replace(cfg or DyGLNetConfig(), **overrides)
        self.cfg = cfg
        w = cfg.widths
        self.stem = Stem(cfg.in_channels, cfg.stem_widths, w[0])
        self.stages = nn.ModuleList(
            EncoderStage(
                w[i - 1] if i else w[0],
                w[i],
                cfg.depths[i],
                attn_channels=cfg.attn_channels[i],
                qk_dim=cfg.qk_dim[i],
                with_mixer=cfg.mixer_stages[i],
                cfg=cfg,
            )
            for i in range(3)
        )
        skips = (w[1], w[0], cfg.stem_widths[2], cfg.stem_widths[1])
        deeps = (w[2], w[1], w[0], cfg.stem_widths[2])
        self.decoder = nn.ModuleList(FusionUp(s, d, cfg) for s, d in zip(skips, deeps, strict=True))
        self.head = nn.Conv2d(skips[-1], cfg.num_classes, 1)

    def forward(self, x):
        check_divisible(x, self.size_divisor, "DyGLNet")
        skip_full, skip_half, x = self.stem(x)
        skip_quarter = x = self.stages[0](x)
        skip_eighth = x = self.stages[1](x)
        x = self.stages[2](x)
        for unit, skip in zip(self.decoder, (skip_eighth, skip_quarter, skip_half, skip_full), strict=True):
            x = unit(skip, x)
        return self.head(x)


# ----------------------------------------------------------------------------------------------
# Loading the authors' release
# ----------------------------------------------------------------------------------------------


def config_from_authors(cfg: Mapping) -> DyGLNetConfig:
    """Translate the release's configuration dict (``embed_dim``, ``partial_dim``, ...) to a config."""
    return DyGLNetConfig(
        widths=tuple(cfg["embed_dim"]),
        attn_channels=tuple(cfg["partial_dim"]),
        qk_dim=tuple(cfg["qk_dim"]),
        depths=tuple(cfg["depth"]),
        mixer_stages=tuple(t == "s" for t in cfg["types"]),
    )


def _stage_block(m: re.Match) -> str:
    stage, index = int(m[1]), int(m[2])
    if stage == 1:
        return f"stages.0.blocks.{index}."
    # In stages 2 and 3 the release puts the downsampling unit at index 0 of the same Sequential.
    return f"stages.{stage - 1}.blocks.{index - 1}."


# Applied in order, each to the result of the previous one.
_AUTHORS_KEY_RULES: list[tuple[str, object]] = [
    (r"^patch_embed\.([0246])\.", lambda m: f"stem.conv{int(m[1]) // 2 + 1}."),
    (r"^blocks([23])\.0\.conv\.([0234])\.", lambda m: f"stages.{int(m[1]) - 1}.downsample.{m[2]}."),
    (r"(downsample)\.0\.", r"\1.expand."),
    (r"(downsample)\.2\.", r"\1.dw."),
    (r"(downsample)\.3\.", r"\1.se."),
    (r"(downsample)\.4\.", r"\1.project."),
    (r"^blocks([123])\.(\d+)\.", _stage_block),
    (r"\.conv\.m\.", ".local_conv."),
    (r"\.mixer\.m\.pre_norm\.", ".mixer.attn.norm."),
    (r"\.mixer\.m\.qkv\.", ".mixer.attn.qkv."),
    (r"\.mixer\.m\.proj\.1\.", ".mixer.fuse."),
    (r"\.mixer\.m\.SHDCBlock\.", ".mixer.local."),
    (r"\.ffn\.m\.pw1\.", ".ffn.expand."),
    (r"\.ffn\.m\.pw2\.", ".ffn.project."),
    (r"^upsample([1-4])\.", lambda m: f"decoder.{int(m[1]) - 1}."),
    (r"\.dy_sample\.init_pos$", ".upsample.base_offsets"),
    (r"\.dy_sample\.offset\.", ".upsample.offset."),
    (r"\.dy_sample\.cnn\.", ".upsample.reduce."),
    (r"\.adjust_channel\.", ".align."),
    (r"\.conv3x3\.", ".out."),
    (r"\.cnn_block\.", ".fuse."),
    # The release's dilated block: token_mixer.0 = dilated convs + BN, token_mixer.1 = SE,
    # channel_mixer.m.{0,2} = the channel MLP.
    (r"\.token_mixer\.0\.conv_dil(\d)\.", lambda m: f".dilated.{int(m[1]) - 1}."),
    (r"\.token_mixer\.0\.bn\.", ".norm."),
    (r"\.token_mixer\.1\.", ".se."),
    (r"\.channel_mixer\.m\.0\.", ".mlp_in."),
    (r"\.channel_mixer\.m\.2\.", ".mlp_out."),
    (r"^final_conv\.", "head."),
    (r"\.c\.weight$", ".conv.weight"),  # every conv-BN unit of the release names its conv "c"
]
_AUTHORS_KEY_RULES = [(re.compile(p), r) for p, r in _AUTHORS_KEY_RULES]


def authors_key_to_ours(key: str) -> str:
    """Rename one state-dict key of the authors' release to this implementation's name."""
    for pattern, repl in _AUTHORS_KEY_RULES:
        key = pattern.sub(repl, key)
    return key


def load_authors_state_dict(model: DyGLNet, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a state dict saved by the authors' release into ``model``, strictly.

    Every source key must map onto a parameter or buffer of ``model`` with the same shape, and every
    parameter and buffer must be filled; otherwise a ``KeyError`` lists what did not match. Floating
    tensors are cast to the model's dtype (the reference fixture stores float16).
    """
    ours = model.state_dict()
    renamed: dict[str, torch.Tensor] = {}
    unmatched, shape_errors = [], []
    for key, value in state_dict.items():
        new = authors_key_to_ours(key)
        if new not in ours:
            unmatched.append(f"{key} -> {new}")
        elif ours[new].shape != value.shape:
            shape_errors.append(f"{key} -> {new}: {tuple(value.shape)} vs {tuple(ours[new].shape)}")
        else:
            renamed[new] = value.to(ours[new].dtype) if value.is_floating_point() else value
    unfilled = sorted(set(ours) - set(renamed))
    if unmatched or shape_errors or unfilled:
        lines = ["authors' state dict does not match this DyGLNet:"]
        for title, items in (
            ("keys with no counterpart", unmatched),
            ("shape mismatches", shape_errors),
            ("parameters/buffers left unfilled", unfilled),
        ):
            if items:
                lines.append(f"  {title} ({len(items)}):")
                lines.extend(f"    {item}" for item in items[:50])
                if len(items) > 50:
                    lines.append(f"    ... and {len(items) - 50} more")
        raise KeyError("\n".join(lines))
    model.load_state_dict(renamed, strict=True)


# ----------------------------------------------------------------------------------------------
# Registered configurations: the paper's model and its Table 6 ablation variants
# ----------------------------------------------------------------------------------------------


def _build(name: str, base: DyGLNetConfig, pretrained_file: PretrainedFile, overrides: dict) -> DyGLNet:
    # Trained from scratch, as released: no backbone takes weights, so a pretrained_file is refused in the
    # same words as every other model's.
    return build_model_with_cfg(DyGLNet, name, {}, pretrained_file, cfg=base, **overrides)


def _ablation(name: str, pretrained_file: PretrainedFile, overrides: dict) -> DyGLNet:
    return _build(name, DyGLNetConfig(**ABLATION_VARIANTS[name]), pretrained_file, overrides)


@register_model(family="Ours", display_name="DyGLNet", min_input_size=16)
def dyglnet(pretrained_file: PretrainedFile = None, **overrides) -> DyGLNet:
    """The released DyGLNet (SHViT-S1 encoder widths); keyword arguments override config fields."""
    return _build("dyglnet", DyGLNetConfig(), pretrained_file, overrides)


@register_model(family="Ablation", display_name="ours w BiIn", min_input_size=16)
def dyglnet_w_bilinear(pretrained_file: PretrainedFile = None, **overrides) -> DyGLNet:
    """Bilinear x2 interpolation instead of DySample, same 1x1 channel halving (upsampler="bilinear")."""
    return _ablation("dyglnet_w_bilinear", pretrained_file, overrides)


@register_model(family="Ablation", display_name="ours w TConv", min_input_size=16)
def dyglnet_w_tconv(pretrained_file: PretrainedFile = None, **overrides) -> DyGLNet:
    """A 2x2 stride-2 transposed convolution instead of DySample and its 1x1 conv (upsampler="tconv")."""
    return _ablation("dyglnet_w_tconv", pretrained_file, overrides)


@register_model(family="Ablation", display_name="ours w/o DyT", min_input_size=16)
def dyglnet_wo_dyt(pretrained_file: PretrainedFile = None, **overrides) -> DyGLNet:
    """BatchNorm instead of DyT before the attention (attn_norm="batchnorm")."""
    return _ablation("dyglnet_wo_dyt", pretrained_file, overrides)


@register_model(family="Ablation", display_name="ours w/o DC", min_input_size=16)
def dyglnet_wo_dc(pretrained_file: PretrainedFile = None, **overrides) -> DyGLNet:
    """The encoder mixer's three dilated depthwise convolutions removed (mixer_dilations=())."""
    return _ablation("dyglnet_wo_dc", pretrained_file, overrides)


@register_model(family="Ablation", display_name="ours w/o SA", min_input_size=16)
def dyglnet_wo_sa(pretrained_file: PretrainedFile = None, **overrides) -> DyGLNet:
    """The attention channels pass through unchanged: no DyT, no q/k/v (use_attention=False)."""
    return _ablation("dyglnet_wo_sa", pretrained_file, overrides)


@register_model(family="Ablation", display_name="ours Split-DC", min_input_size=16)
def dyglnet_split_dc(pretrained_file: PretrainedFile = None, **overrides) -> DyGLNet:
    """One eighth of each stage's channels to attention (attn_channels=(16, 28, 40))."""
    return _ablation("dyglnet_split_dc", pretrained_file, overrides)


@register_model(family="Ablation", display_name="ours Split-SA", min_input_size=16)
def dyglnet_split_sa(pretrained_file: PretrainedFile = None, **overrides) -> DyGLNet:
    """Half of each stage's channels to attention (attn_channels=(64, 112, 160))."""
    return _ablation("dyglnet_split_sa", pretrained_file, overrides)


__all__ = [
    "ABLATION_VARIANTS",
    "DyGLNet",
    "DyGLNetConfig",
    "authors_key_to_ours",
    "config_from_authors",
    "load_authors_state_dict",
]
