"""FAT-Net: feature adaptive transformers for skin lesion segmentation.

Wu et al., "FAT-Net: Feature adaptive transformers for automated skin lesion segmentation", Medical
Image Analysis 2022. Reference implementation: https://github.com/SZUcsh/FAT-Net (``FAT_Net``).

Two encoders read the 224 x 224 image: a ResNet-34 (timm ``resnet34`` stem and layers 1-4, without
its max-pool, so the skips sit at 1/2, 1/4, 1/8 and the bottleneck at 1/16) and a DeiT-tiny
(timm ``deit_tiny_distilled_patch16_224`` patch embedding and its 12 blocks, applied to the 196 patch
tokens as the reference does: no class/distillation tokens, no position embedding, no final norm).
The bottleneck concatenates both (the DeiT map lifted to 512 channels by a 1x1 conv), gates it with
a squeeze-and-excitation block and projects it back to 512 channels. Each skip passes through a
feature adaptation module (3x3 conv-ReLU + 1x1 conv-ReLU); as in the reference, ONE module per skip
is applied 6, 4 and 2 times (shared weights) at 1/2, 1/4 and 1/8. Bottleneck decoder blocks add the
adapted skips; a transposed conv and two 3x3 convs produce the logits at full resolution.

Deliberate differences from the reference: the reference builds a fourth decoder block
(``decoder1``, 4,640 parameters) that its forward never runs; it is left out here. The DeiT
attention runs timm's explicit (non-fused) path, which computes the same thing, so that fvcore counts
its matrix products as it does for the reference.

Fixed to 224 x 224 inputs (the reference reshapes the DeiT tokens to a 14 x 14 map).

Pretrained weights: the reference starts from torchvision's ``resnet34(pretrained=True)`` and DeiT's
``torch.hub`` ``deit_tiny_distilled_patch16_224``. ``pretrained=True`` loads the same weights from the Hugging
Face Hub (timm ``resnet34.tv_in1k`` and ``deit_tiny_distilled_patch16_224.fb_in1k``);
``pretrained_file={"resnet": path, "deit": path}`` (either may be left out) takes a local ResNet-34 ImageNet
state dict (timm or torchvision keys) and a local ``deit_tiny_distilled_patch16_224`` checkpoint (timm keys,
or the official DeiT release, whose weights sit under ``"model"``) instead. Without either the model starts
from scratch.
"""

from __future__ import annotations

import timm
import torch
import torch.nn as nn

from baselines._cnn_parts import ResNetTrunk, resnet_pretrained_cfg
from models.pretrained import PretrainedCfg, PretrainedFile, build_model_with_cfg
from models.registry import register_model
from models.shapes import check_fixed_size

__all__ = ["FATNet", "fatnet"]

IMAGE_SIZE = 224
DEIT = "deit_tiny_distilled_patch16_224"

HUB_WEIGHTS = {"resnet": "resnet34.tv_in1k", "deit": "deit_tiny_distilled_patch16_224.fb_in1k"}
PRETRAINED_CFGS = {
    "resnet": resnet_pretrained_cfg("resnet34", "cnn", hub=HUB_WEIGHTS["resnet"]),
    # the reference uses only DeiT's patch embedding and blocks
    "deit": PretrainedCfg(
        DEIT,
        module="transformer",
        unused=("cls_token", "dist_token", "pos_embed", "norm.", "head"),
        hub=HUB_WEIGHTS["deit"],
    ),
}


class FeatureAdaptation(nn.Module):
    """FAM: ``relu(conv3x3(x)) + relu(conv1x1(x))`` at constant width."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv3 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=1)
        self.act3 = nn.ReLU(inplace=True)
        self.act1 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act3(self.conv3(x)) + self.act1(self.conv1(x))


class RepeatedFeatureAdaptation(nn.Module):
    """One :class:`FeatureAdaptation` applied ``repeats`` times (weights shared across repeats)."""

    def __init__(self, channels: int, repeats: int):
        super().__init__()
        self.block = FeatureAdaptation(channels)
        self.repeats = repeats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.repeats):
            x = self.block(x)
        return x


class SqueezeExcitationGate(nn.Module):
    """Bias-free SE gate (reduction 16): ``x * sigmoid(fc(relu(fc(avgpool(x)))))``."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc(self.pool(x).flatten(1))
        return x * gate[:, :, None, None]


class BottleneckUpBlock(nn.Module):
    """1x1 conv to C/4, 3x3 stride-2 transposed conv (x2), 1x1 conv to ``out_channels``; BN-ReLU each."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = in_channels // 4
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, mid, 1), nn.BatchNorm2d(mid), nn.ReLU(inplace=True))
        self.up = nn.Sequential(
            nn.ConvTranspose2d(mid, mid, 3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
        )
        self.expand = nn.Sequential(
            nn.Conv2d(mid, out_channels, 1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.up(self.reduce(x)))


class PatchTokenEncoder(nn.Module):
    """A timm ViT's patch embedding and blocks under timm's names, applied to the patch tokens alone."""

    def __init__(self, arch: str, in_chans: int = 3):
        super().__init__()
        vit = timm.create_model(arch, pretrained=False, num_classes=0, in_chans=in_chans)
        self.patch_embed, self.blocks = vit.patch_embed, vit.blocks
        self.embed_dim = vit.embed_dim
        for block in self.blocks:
            block.attn.fused_attn = False  # explicit softmax(QK^T)V: same maths, and fvcore counts it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.patch_embed(x))


class FATNet(nn.Module):
    """FAT-Net with a 1-channel logit head; see the module docstring."""

    def __init__(self, in_chans: int = 3, num_classes: int = 1):
        super().__init__()
        self.cnn = ResNetTrunk("resnet34", num_layers=4, maxpool=False, in_chans=in_chans)
        self.transformer = PatchTokenEncoder(DEIT, in_chans)
        tf_dim = self.transformer.embed_dim

        filters = (64, 128, 256, 512)
        self.tokens_to_map = nn.Conv2d(tf_dim, filters[3], kernel_size=1)
        self.fusion_gate = SqueezeExcitationGate(2 * filters[3])
        self.fusion_proj = nn.Conv2d(2 * filters[3], filters[3], kernel_size=1)

        self.skip_adapters = nn.ModuleList(
            RepeatedFeatureAdaptation(c, r) for c, r in zip(filters[:3], (6, 4, 2), strict=True)
        )
        self.decoders = nn.ModuleList(BottleneckUpBlock(filters[i + 1], filters[i]) for i in reversed(range(3)))
        self.head = nn.Sequential(
            nn.ConvTranspose2d(filters[0], 32, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, num_classes, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_fixed_size(x, IMAGE_SIZE, "FAT-Net")
        skips = self.cnn(x)
        cnn_bottleneck = skips.pop()

        tokens = self.transformer(x)  # (B, 196, C)
        grid = IMAGE_SIZE // 16
        tf_map = tokens.transpose(1, 2).reshape(x.shape[0], -1, grid, grid)
        fused = torch.cat([cnn_bottleneck, self.tokens_to_map(tf_map)], dim=1)
        out = self.fusion_proj(self.fusion_gate(fused))

        adapted = [adapter(skip) for adapter, skip in zip(self.skip_adapters, skips, strict=True)]
        for decoder, skip in zip(self.decoders, reversed(adapted), strict=True):
            out = decoder(out) + skip
        return self.head(out)


@register_model(family="Hybrid", display_name="FATNet", fixed_input_size=IMAGE_SIZE, hub_weights=HUB_WEIGHTS)
def fatnet(pretrained_file: PretrainedFile = None, pretrained: bool = False, **kwargs) -> nn.Module:
    """FAT-Net for 224 x 224 inputs; ``pretrained``: ResNet-34 and DeiT-tiny-distilled ImageNet weights from
    the Hub; ``pretrained_file``: ``{"resnet": path, "deit": path}``, local files instead (either may be left out)."""
    return build_model_with_cfg(FATNet, "fatnet", PRETRAINED_CFGS, pretrained_file, pretrained, **kwargs)
