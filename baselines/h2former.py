"""H2Former: hierarchical hybrid CNN-Transformer for medical image segmentation.

He et al., "H2Former: An Efficient Hierarchical Hybrid Transformer for Medical Image Segmentation",
IEEE TMI 2023. Reference implementation: https://github.com/NKUhealong/H2Former (``res34_swin_MS``).

Encoder: four hybrid stages. Each stage runs a ResNet-34 layer (timm ``resnet34`` layers 1-4, behind a
stride-1 7x7 stem and a max-pool, so stage 1 works at 1/2 resolution), adds a multi-scale token map
(stage 1: a multi-kernel patch embedding of the image, kernels 2/4/8/16 with stride 2; later stages:
a multi-kernel patch merging of the previous stage's tokens, kernels 2/4 with stride 2), then runs two
Swin blocks (embed 64, heads 2/4/8/16, window = image size / 16) whose MLP ends in an ECA channel
attention with a residual (``x * gate + x``). Decoder: transposed-conv upsampling + 3x3 conv-BN-ReLU
per skip, then a bilinear x2 upsampling and a 1x1 classifier.

Deliberate differences from the reference:

* 3 input channels (the reference hard-codes 4).
* The reference MLP reshapes its ``(B, N, C)`` tokens with ``view(B, C, H, W)`` before the ECA (a
  reshape, not a transpose), so its ECA gates groups of tokens and the MLP output comes back with
  tokens and channels permuted. By default we apply the ECA to the real channel map, as the paper
  describes; ``reference_mlp_layout=True`` reproduces the reference's memory layout exactly. The
  parameter count and FLOPs are the same either way.
* The Swin blocks are timm's ``SwinTransformerBlock`` (channels-last) with the MLP swapped.

A model is built for one square image size (default 224, any multiple of 16 via ``image_size=``):
the window size and the relative-position tables depend on it, and inputs of any other size raise a
ValueError. The registry lists the default, 224.

Pretrained weights: the reference initialises only the ResNet-34 part from ImageNet weights (its train.py
copies the tensors of ``./resnet34.pth`` whose torchvision names and shapes match; the 4-channel stem conv does
not). ``pretrained=True`` loads torchvision's ImageNet ResNet-34 from the Hugging Face Hub (timm
``resnet34.tv_in1k``) into stem and layers 1-4; ``pretrained_file`` is a local timm/torchvision ``resnet34``
state-dict file instead (or ``{"resnet": path}``). There are no ImageNet weights for its 64-dim Swin blocks.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import EcaModule
from timm.models.swin_transformer import SwinTransformerBlock

from baselines._cnn_parts import ResNetTrunk, resnet_pretrained_cfg
from models.pretrained import PretrainedFile, build_model_with_cfg
from models.registry import ModelArgumentError, register_model

__all__ = ["H2Former", "h2former"]

HUB_WEIGHTS = {"resnet": "resnet34.tv_in1k"}
PRETRAINED_CFGS = {"resnet": resnet_pretrained_cfg("resnet34", "cnn", hub=HUB_WEIGHTS["resnet"])}


class ResidualEca(nn.Module):
    """ECA channel attention with an identity path: ``x + x * sigmoid(conv1d(avgpool(x)))``."""

    def __init__(self, kernel_size: int = 3):
        super().__init__()
        self.eca = EcaModule(kernel_size=kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        return x + self.eca(x)


class EcaMlp(nn.Module):
    """Transformer MLP (fc-GELU-fc) followed by a residual ECA; works on channels-last maps."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0, reference_layout: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.drop = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.eca = ResidualEca()
        self.reference_layout = reference_layout

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C)
        b, h, w, c = x.shape
        x = self.fc2(self.drop(self.act(self.fc1(x))))
        if self.reference_layout:
            # The reference's view(B, C, H, W) of a (B, N, C) tensor, then flatten + transpose back.
            y = self.eca(x.reshape(b, c, h, w))
            x = y.permute(0, 2, 3, 1)
        else:
            x = self.eca(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.drop(x)


class EcaSwinBlock(SwinTransformerBlock):
    """timm's (shifted-)window attention block whose MLP is an :class:`EcaMlp`."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0, reference_mlp_layout: bool = False, **kwargs):
        super().__init__(dim=dim, mlp_ratio=mlp_ratio, **kwargs)
        self.mlp = EcaMlp(dim, int(dim * mlp_ratio), reference_layout=reference_mlp_layout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C)
        x = x + self.drop_path1(self._attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class MultiKernelPatchEmbed(nn.Module):
    """Stride-2 convolutions with kernels 2, 4, 8, 16 (channels C/2, C/4, C/8, C/8), concatenated,
    ECA-gated and layer-normalised; returns a channels-last token map at half resolution."""

    def __init__(self, in_chans: int, embed_dim: int, kernels: tuple[int, ...] = (2, 4, 8, 16)):
        super().__init__()
        n = len(kernels)
        widths = [embed_dim // 2 ** (i + 1) for i in range(n - 1)] + [embed_dim // 2 ** (n - 1)]
        self.projs = nn.ModuleList(
            nn.Conv2d(in_chans, w, kernel_size=k, stride=2, padding=(k - 2) // 2)
            for k, w in zip(kernels, widths, strict=True)
        )
        self.eca = ResidualEca()
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.eca(torch.cat([proj(x) for proj in self.projs], dim=1))
        return self.norm(x.permute(0, 2, 3, 1))


class MultiKernelPatchMerging(nn.Module):
    """LayerNorm, then stride-2 convolutions with kernels 2 and 4 (C channels each), concatenated to
    2C channels and ECA-gated; channels-last in, channels-first out (it is added to a CNN map)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.reductions = nn.ModuleList(
            nn.Conv2d(dim, dim, kernel_size=k, stride=2, padding=(k - 2) // 2) for k in (2, 4)
        )
        self.eca = ResidualEca()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C) -> (B, 2C, H/2, W/2)
        x = self.norm(x).permute(0, 3, 1, 2)
        return self.eca(torch.cat([r(x) for r in self.reductions], dim=1))


class UpConcatDecoder(nn.Module):
    """2x transposed-conv upsampling, concatenation with the skip, 3x3 conv-BN-ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.fuse = nn.Sequential(
            nn.Conv2d(2 * out_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.up(x), skip], dim=1))


class H2Former(nn.Module):
    """H2Former (``res34_swin_MS``) with a 1-channel logit head; see the module docstring."""

    def __init__(
        self,
        image_size: int = 224,
        in_chans: int = 3,
        num_classes: int = 1,
        *,
        embed_dim: int = 64,
        depths: tuple[int, ...] = (2, 2, 2, 2),
        num_heads: tuple[int, ...] = (2, 4, 8, 16),
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.1,
        reference_mlp_layout: bool = False,
    ):
        super().__init__()
        if image_size % 16 or image_size < 16:
            raise ModelArgumentError(f"H2Former needs an image size divisible by 16, got {image_size}")
        self.image_size = image_size
        window = image_size // 16
        dims = [embed_dim * 2**i for i in range(4)]

        # H2Former's stem keeps full resolution up to the max-pool
        self.cnn = ResNetTrunk("resnet34", num_layers=4, stem_stride=1, in_chans=in_chans)

        self.patch_embed = MultiKernelPatchEmbed(in_chans, embed_dim)
        self.scale_merges = nn.ModuleList(MultiKernelPatchMerging(d) for d in dims[:-1])

        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.swin_stages = nn.ModuleList()
        for i, (dim, depth, heads) in enumerate(zip(dims, depths, num_heads, strict=True)):
            res = image_size // 2 ** (i + 1)
            first = sum(depths[:i])
            self.swin_stages.append(
                nn.Sequential(
                    *(
                        EcaSwinBlock(
                            dim=dim,
                            input_resolution=(res, res),
                            num_heads=heads,
                            window_size=window,
                            shift_size=0 if j % 2 == 0 else window // 2,
                            mlp_ratio=mlp_ratio,
                            qkv_bias=True,
                            drop_path=rates[first + j],
                            reference_mlp_layout=reference_mlp_layout,
                        )
                        for j in range(depth)
                    )
                )
            )

        self.decoders = nn.ModuleList(UpConcatDecoder(dims[i + 1], dims[i]) for i in reversed(range(3)))
        self.head = nn.Conv2d(dims[0], num_classes, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"H2Former built for {self.image_size}x{self.image_size} inputs, got "
                f"{tuple(x.shape[-2:])} (build it with image_size=<multiple of 16> for another size)"
            )
        extra = self.patch_embed(x).permute(0, 3, 1, 2)
        feat = self.cnn.stem(x)
        skips = []
        for i, (cnn, swin) in enumerate(zip(self.cnn.stages(), self.swin_stages, strict=True)):
            tokens = swin((cnn(feat) + extra).permute(0, 2, 3, 1))
            feat = tokens.permute(0, 3, 1, 2)
            skips.append(feat)
            if i < len(self.scale_merges):
                extra = self.scale_merges[i](tokens)

        out = skips[-1]
        for decoder, skip in zip(self.decoders, reversed(skips[:-1]), strict=True):
            out = decoder(out, skip)
        out = F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True)
        return self.head(out)


@register_model(family="Hybrid", display_name="H2Former", fixed_input_size=224, hub_weights=HUB_WEIGHTS)
def h2former(pretrained_file: PretrainedFile = None, pretrained: bool = False, **kwargs) -> nn.Module:
    """H2Former for 224 x 224 inputs (``image_size=`` builds it for another multiple of 16);
    ``pretrained``: ImageNet ResNet-34 from the Hub; ``pretrained_file``: a local ResNet-34 state dict instead
    (timm or torchvision keys)."""
    return build_model_with_cfg(H2Former, "h2former", PRETRAINED_CFGS, pretrained_file, pretrained, **kwargs)
