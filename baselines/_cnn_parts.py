"""Convolution blocks and the timm ResNet trunk shared by several baselines."""

from __future__ import annotations

import timm
import torch
import torch.nn as nn

from models.pretrained import PretrainedCfg


class ConvBnReLU(nn.Sequential):
    """3x3 convolution (padding 1) -> BatchNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """Two :class:`ConvBnReLU` layers as one flat sequence: U-Net's double convolution, UNet++'s VGG block."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(*ConvBnReLU(in_channels, out_channels, bias), *ConvBnReLU(out_channels, out_channels, bias))


class ResNetTrunk(nn.Module):
    """The stem and the first ``num_layers`` residual stages of a timm ResNet, under timm's names (which are
    torchvision's), so that ImageNet checkpoints of either load without renaming.

    ``maxpool=False`` leaves the stem's max-pool out; ``stem_stride=1`` keeps the stem at full resolution.
    Other keywords go to ``timm.create_model``. ``forward`` returns the output of every stage.
    """

    def __init__(self, arch: str, num_layers: int = 4, maxpool: bool = True, stem_stride: int = 2, **timm_kwargs):
        super().__init__()
        resnet = timm.create_model(arch, pretrained=False, num_classes=0, **timm_kwargs)
        resnet.conv1.stride = (stem_stride, stem_stride)
        self.conv1, self.bn1, self.act1 = resnet.conv1, resnet.bn1, resnet.act1
        self.maxpool = resnet.maxpool if maxpool else nn.Identity()
        self.stage_names = [f"layer{i}" for i in range(1, num_layers + 1)]
        for name in self.stage_names:
            self.add_module(name, resnet.get_submodule(name))
        self.channels = tuple(f["num_chs"] for f in resnet.feature_info if f["module"] in self.stage_names)

    def stages(self) -> list[nn.Module]:
        return [self.get_submodule(name) for name in self.stage_names]

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.act1(self.bn1(self.conv1(x))))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for stage in self.stages():
            x = stage(x)
            outs.append(x)
        return outs


def resnet_pretrained_cfg(arch: str, module: str, hub: str | None = None) -> PretrainedCfg:
    """A timm/torchvision ImageNet ResNet checkpoint for the :class:`ResNetTrunk` at ``module``; its
    classifier and the stages the trunk does not build are dropped. ``hub``: timm ``model.tag`` on the Hub."""
    return PretrainedCfg(arch, module=module, unused=("fc.", "layer"), hub=hub)
