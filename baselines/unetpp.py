"""UNet++ (Zhou et al., DLMIA 2018) as ``NestedUNet`` in 4uiiurz1/pytorch-nested-unet.

Filters 32, 64, 128, 256, 512; no deep supervision (one 1x1 head on the last full-resolution node).
Node X(i, j) (depth i, j-th node along the skip pathway) is a VGG block (two 3x3 conv with bias ->
BatchNorm -> ReLU) applied to the concatenation of all earlier nodes of its row, X(i, 0..j-1), and the
bilinearly upsampled (x2, ``align_corners=True``) node X(i+1, j-1) below it. Parameter count equals
the reference's 9,163,329.

Deliberate difference: H and W must be multiples of 16 (four 2x2 max-pools); other sizes raise a
``ValueError`` instead of failing inside ``torch.cat`` as the reference does. Trained from scratch.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from baselines._cnn_parts import DoubleConv
from models.pretrained import PretrainedFile, build_model_with_cfg
from models.registry import register_model
from models.shapes import check_divisible

__all__ = ["UNetPlusPlus", "unetpp"]

SIZE_DIVISOR = 16  # four 2x2 max-pools


class UNetPlusPlus(nn.Module):
    """Nested U-Net with dense skip pathways; ``widths`` are the channels per depth."""

    def __init__(self, in_channels: int = 3, num_classes: int = 1, widths: tuple[int, ...] = (32, 64, 128, 256, 512)):
        super().__init__()
        self.depth = len(widths)
        self.pool = nn.MaxPool2d(2)
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        # backbone column X(i, 0)
        self.backbone = nn.ModuleList(
            DoubleConv(c_in, c_out) for c_in, c_out in zip((in_channels, *widths[:-1]), widths, strict=True)
        )
        # nested nodes X(i, j), j >= 1, i + j < depth, keyed "i_j"
        self.nodes = nn.ModuleDict(
            {
                f"{i}_{j}": DoubleConv(j * widths[i] + widths[i + 1], widths[i])
                for j in range(1, self.depth)
                for i in range(self.depth - j)
            }
        )
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        self.size_divisor = 2 ** (self.depth - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.size_divisor, "UNet++")
        rows: list[list[torch.Tensor]] = [[] for _ in range(self.depth)]
        # going down the backbone, fill the anti-diagonal that each new depth completes
        for level, block in enumerate(self.backbone):
            x = block(x if level == 0 else self.pool(x))
            rows[level].append(x)
            for i in range(level - 1, -1, -1):
                j = level - i
                below = self.upsample(rows[i + 1][j - 1])
                rows[i].append(self.nodes[f"{i}_{j}"](torch.cat([*rows[i], below], dim=1)))
        return self.head(rows[0][-1])


@register_model(family="CNN", display_name="Unet++", min_input_size=SIZE_DIVISOR)
def unetpp(pretrained_file: PretrainedFile = None, **kwargs) -> nn.Module:
    """UNet++ without deep supervision (9.16 M params); H and W must be multiples of 16. Trained from
    scratch (no ImageNet backbone)."""
    return build_model_with_cfg(UNetPlusPlus, "unetpp", {}, pretrained_file, **kwargs)
