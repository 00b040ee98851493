"""M2SNet (Zhao et al., "M2SNet: Multi-scale in Multi-scale Subtraction Network for Medical Image
Segmentation", 2023); reference: github.com/Xiaoqi-Zhao-DLUT/MSNet-M2SNet (``M2SNet``).

Encoder: Res2Net-50 v1b 26w4s, built as timm's ``res2net50d`` (identical in every tensor shape: deep
3-conv stem, average-pool shortcuts) without its classifier. The five features used are the stem's
max-pool output (64 ch, 1/4), which timm's ``features_only`` does not expose, and layers 1-4, so the
stem and stages are called directly. Each level is reduced to 64 channels; a pyramid of multi-scale
subtraction units (MSU) takes |a - b| between neighbouring levels at three receptive fields (identity,
and fixed all-ones 3x3 and 5x5 filters followed by a BatchNorm and ReLU shared by every unit), then the
orders of differences are summed per level and decoded top-down into one logit map.

Deliberate differences from the reference:
- The all-ones filters are non-persistent buffers (constants; the reference makes them tensors that are
  neither parameters nor buffers and pins them to CUDA). Their all-zero bias is omitted.
- ``F.upsample(mode="bilinear")`` is written as ``F.interpolate(..., align_corners=False)``, its
  default.
- None in the output: the reference ``M2SNet.forward`` already returns a single logit map at input
  resolution (no deep-supervision side outputs), and so does this one. Its training script adds a
  VGG-16 feature loss (``LossNet``), which belongs to the loss, not to the network, and is not built.
No divisibility is needed (sizes are matched by interpolation); H and W must be >= 32, the encoder stride.
"""

from __future__ import annotations

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines._cnn_parts import ConvBnReLU
from models.pretrained import PretrainedCfg, PretrainedFile, build_model_with_cfg
from models.registry import register_model

__all__ = ["M2SNet", "m2snet"]

_MIN_SIZE = 32  # output stride of the Res2Net encoder
_WIDTH = 64  # channels of every decoder feature

# pretrained=True: timm's res2net50d.in1k, whose published ImageNet accuracy is that of the Res2Net authors'
# res2net50_v1b_26w_4s checkpoint the reference loads (docs/how-to/pretrained-weights.md)
HUB_WEIGHTS = {"res2net": "res2net50d.in1k"}
PRETRAINED_CFGS = {
    "res2net": PretrainedCfg("res2net50d", module="backbone", unused=("fc.",), hub=HUB_WEIGHTS["res2net"])
}


def resize_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


class AllOnesFilter(nn.Module):
    """Fixed k x k all-ones convolution over all channels (a local sum), then trainable BN and ReLU."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.register_buffer("kernel", torch.ones(channels, channels, kernel_size, kernel_size), persistent=False)
        self.padding = kernel_size // 2
        self.norm = nn.BatchNorm2d(channels)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(F.conv2d(x, self.kernel, padding=self.padding)))


class MultiScaleSubtraction(nn.Module):
    """MSU: sum of |a - b| over identity, 3x3 and 5x5 all-ones receptive fields, then conv-BN-ReLU.

    The two all-ones filters (and their BatchNorms) are shared by every unit of the network, so they are
    passed in at call time rather than owned.
    """

    def __init__(self, channels: int = _WIDTH):
        super().__init__()
        self.fuse = ConvBnReLU(channels, channels)

    def forward(self, a: torch.Tensor, b: torch.Tensor, filters: tuple[nn.Module, ...]) -> torch.Tensor:
        diff = (a - b).abs()
        for f in filters:
            diff = diff + (f(a) - f(b)).abs()
        return self.fuse(diff)


class M2SNet(nn.Module):
    """Res2Net-50 encoder, 4 reducers, a 4-order MSU pyramid (4+3+2+1 units), top-down decoder."""

    def __init__(self, num_classes: int = 1):
        super().__init__()
        # timm's res2net50d == Res2Net-50 v1b 26w4s; classifier removed (num_classes=0 -> Identity)
        self.backbone = timm.create_model("res2net50d", pretrained=False, num_classes=0)
        # features coarse to fine: layer4 (2048), layer3 (1024), layer2 (512), layer1 (256); the max-pool
        # output (64 ch) is used as it is
        self.reducers = nn.ModuleList(ConvBnReLU(c, _WIDTH) for c in (2048, 1024, 512, 256))
        self.ones3 = AllOnesFilter(_WIDTH, 3)
        self.ones5 = AllOnesFilter(_WIDTH, 5)
        # subtraction order n compares neighbouring maps of order n-1: 4, 3, 2, 1 units
        self.msu = nn.ModuleList(nn.ModuleList(MultiScaleSubtraction() for _ in range(4 - n)) for n in range(4))
        self.top_refine = ConvBnReLU(_WIDTH, _WIDTH)  # applied to the coarser input of the 4th-order unit
        # per-level aggregation of all subtraction orders (levels 1/8, 1/4 (layer1), 1/4 (max-pool))
        self.level_convs = nn.ModuleList(ConvBnReLU(_WIDTH, _WIDTH) for _ in range(3))
        self.deep_reducer = ConvBnReLU(2048, _WIDTH)  # second reduction of layer4 feeding the decoder
        self.decoder = nn.ModuleList(ConvBnReLU(_WIDTH, _WIDTH) for _ in range(3))
        self.head = nn.Conv2d(_WIDTH, num_classes, 3, padding=1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Max-pool output and layers 1-4 of the Res2Net, finest first."""
        b = self.backbone
        x = b.maxpool(b.act1(b.bn1(b.conv1(x))))
        feats = [x]
        for layer in (b.layer1, b.layer2, b.layer3, b.layer4):
            feats.append(layer(feats[-1]))
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h < _MIN_SIZE or w < _MIN_SIZE:
            raise ValueError(f"M2SNet needs H and W >= {_MIN_SIZE} (encoder stride), got {h}x{w}")
        pooled, *stages = self.encode(x)
        stage_feats = [red(f) for red, f in zip(self.reducers, reversed(stages), strict=True)]
        order = [*stage_feats, pooled]  # 5 maps, coarse to fine
        filters = (self.ones3, self.ones5)

        orders = []  # orders[n][i] compares (order n-1) maps i and i+1, at the resolution of map i+1
        for n, units in enumerate(self.msu):
            prev = order
            order = []
            for i, unit in enumerate(units):
                coarse = self.top_refine(prev[i]) if n == 3 else prev[i]
                order.append(unit(resize_to(coarse, prev[i + 1]), prev[i + 1], filters))
            orders.append(order)

        # level p (p = 1..4, coarse to fine) sums order-n differences orders[n-1][p-n] for n = 1..p
        levels = [orders[0][0]]
        for p, conv in zip(range(2, 5), self.level_convs, strict=True):
            levels.append(conv(sum(orders[n - 1][p - n] for n in range(1, p + 1))))

        y = self.deep_reducer(stages[-1])
        for level, conv in zip(levels[:-1], self.decoder, strict=True):
            y = conv(resize_to(y, level) + level)
        y = self.head(resize_to(y, levels[-1]) + levels[-1])
        return F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)


@register_model(family="CNN", display_name="M2SNet", min_input_size=_MIN_SIZE, hub_weights=HUB_WEIGHTS)
def m2snet(pretrained_file: PretrainedFile = None, pretrained: bool = False, **kwargs) -> nn.Module:
    """M2SNet (27,692,585 parameters); ``pretrained``: ImageNet Res2Net-50 from the Hub (timm
    ``res2net50d.in1k``); ``pretrained_file``: local timm ``res2net50d`` weights instead."""
    return build_model_with_cfg(M2SNet, "m2snet", PRETRAINED_CFGS, pretrained_file, pretrained, **kwargs)
