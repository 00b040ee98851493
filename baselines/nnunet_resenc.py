"""nnU-Net v2's residual-encoder U-Net (ResEnc M; Isensee et al., "nnU-Net Revisited", MICCAI 2024).

The network is ``ResidualEncoderUNet`` of MIC-DKFZ/dynamic-network-architectures, the package nnU-Net
builds its networks with, configured as nnU-Net v2's ``nnUNetPlannerResEncM`` configures a 2D plan whose
patch is the whole ``image_size`` image. :func:`resenc_plan` derives the configuration from the planner's
rules (nnunetv2/experiment_planning/experiment_planners/: ``network_topology.get_pool_and_conv_props``,
the constants of ``default_experiment_planner.ExperimentPlanner`` and
``residual_unets/residual_encoder_unet_planners.ResEncUNetPlanner``):

- Pooling: per axis, halve (``ceil(edge / 2)``) while the edge is at least 8 (2 x the minimum feature-map
  edge 4); when only one axis can still pool, it must be at least 12 (3 x 4). 2D images have isotropic
  spacing in nnU-Net, so its spacing conditions never exclude an axis and every kernel is 3 x 3.
- Stages: one per pooling step plus the first (stride 1); features ``min(32 * 2**i, 512)``.
- Encoder residual blocks per stage: (1, 3, 4, 6, 6, 6, 6, ...) truncated to the stage count; one decoder
  convolution per stage; InstanceNorm (affine, eps 1e-5), LeakyReLU (0.01, in place), convolution bias.
- nnU-Net pads its patch to a multiple of ``2 ** pools``; here the patch is the image, so an
  ``image_size`` that is not a multiple (or below 8, which cannot pool) raises ``ModelArgumentError``.

Plans: 224 -> 6 stages (32-64-128-256-512-512, 7 x 7 bottleneck), 256 -> 7 stages (..., 512 x 3, 4 x 4),
512 -> 8 stages (..., 512 x 4, 4 x 4). The ResEnc M planner would shrink the patch if its VRAM estimate
(``compute_conv_feature_map_size`` with 3 input and 2 output channels) exceeded 135e6; at 224, 256 and 512
it is 24.6e6, 32.3e6 and 129.4e6, so there the patch is the whole image, as here.

Differences from nnU-Net, all from the harness's recipe: one logit channel trained with the BCE + Dice
loss of every model (nnU-Net: softmax over background and foreground); deep supervision off, because that
loss takes one output (nnU-Net adds weighted losses on the decoder's lower-resolution outputs). The
decoder's segmentation heads of those outputs (964 parameters at 224) are therefore never run and not
built. Weights are initialised as nnU-Net's trainer does (``ResidualEncoderUNet.initialize``: He normal,
last norm of each residual block zero). The model accepts any H and W that are multiples of
``2 ** pools`` (32 for the 224 plan) and leave more than one bottleneck pixel (InstanceNorm); other sizes
raise a ``ValueError``. Trained from scratch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet

from models.pretrained import PretrainedFile, build_model_with_cfg
from models.registry import ModelArgumentError, register_model
from models.shapes import check_divisible

__all__ = ["NNUNetResEnc", "Plan", "nnunet_resenc", "resenc_arch_kwargs", "resenc_plan"]

# ExperimentPlanner / ResEncUNetPlanner constants (nnU-Net v2)
MIN_FEATURE_MAP_EDGE = 4  # UNet_featuremap_min_edge_length
BASE_FEATURES = 32  # UNet_base_num_features
MAX_FEATURES_2D = 512  # UNet_max_features_2d
ENCODER_BLOCKS = (1, 3, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6)  # UNet_blocks_per_stage_encoder
DECODER_CONVS = (1,) * 12  # UNet_blocks_per_stage_decoder
MIN_INPUT_SIZE = 64  # default (224) plan pools 5 times; at 32 the bottleneck is 1 x 1, which InstanceNorm rejects


@dataclass(frozen=True)
class Plan:
    """The architecture part of a 2D ResEnc plan (per stage, shallow to deep; strides include stage 0's 1)."""

    patch_size: tuple[int, int]
    features_per_stage: tuple[int, ...]
    kernel_sizes: tuple[tuple[int, int], ...]
    strides: tuple[tuple[int, int], ...]
    n_blocks_per_stage: tuple[int, ...]
    n_conv_per_stage_decoder: tuple[int, ...]

    @property
    def n_stages(self) -> int:
        return len(self.strides)

    @property
    def size_divisor(self) -> tuple[int, int]:
        """Per axis, what H and W must be multiples of (2 ** pools on that axis)."""
        return tuple(math.prod(s[axis] for s in self.strides) for axis in range(2))


def resenc_plan(image_size: int | Sequence[int]) -> Plan:
    """The 2D ResEnc plan for a patch of ``image_size`` (an int, or (H, W)) with isotropic spacing."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ModelArgumentError(f"nnunet_resenc: image_size must be a positive int or (H, W); got {image_size!r}")
    edge = list(size)
    strides = [(1, 1)]
    while True:
        axes = [a for a in range(2) if edge[a] >= 2 * MIN_FEATURE_MAP_EDGE]
        if not axes or (len(axes) == 1 and edge[axes[0]] < 3 * MIN_FEATURE_MAP_EDGE):
            break
        strides.append(tuple(2 if a in axes else 1 for a in range(2)))
        for a in axes:
            edge[a] = math.ceil(edge[a] / 2)
    n = len(strides)
    if n < 2:
        raise ModelArgumentError(
            f"nnunet_resenc: image_size {image_size!r} is too small: nnU-Net pools an axis only while it is at least "
            f"{2 * MIN_FEATURE_MAP_EDGE} pixels, and the U-Net needs one pooling step"
        )
    if n > len(ENCODER_BLOCKS):
        raise ModelArgumentError(
            f"nnunet_resenc: image_size {image_size!r} needs {n} stages; the planner lists {len(ENCODER_BLOCKS)}"
        )
    plan = Plan(
        patch_size=size,
        features_per_stage=tuple(min(BASE_FEATURES * 2**i, MAX_FEATURES_2D) for i in range(n)),
        kernel_sizes=((3, 3),) * n,
        strides=tuple(strides),
        n_blocks_per_stage=ENCODER_BLOCKS[:n],
        n_conv_per_stage_decoder=DECODER_CONVS[: n - 1],
    )
    divisor = plan.size_divisor
    if any(s % d for s, d in zip(size, divisor, strict=True)):
        padded = tuple(-(-s // d) * d for s, d in zip(size, divisor, strict=True))
        multiple = divisor[0] if divisor[0] == divisor[1] else f"{divisor[0]} (H) and {divisor[1]} (W)"
        raise ModelArgumentError(
            f"nnunet_resenc: image_size {image_size!r} gives a plan of {n} stages, which needs H and W multiples of "
            f"{multiple}; nnU-Net would pad its patch to {padded[0]} x {padded[1]}: use such an image size"
        )
    return plan


def resenc_arch_kwargs(plan: Plan) -> dict[str, Any]:
    """The keyword arguments nnU-Net passes to ``ResidualEncoderUNet`` for ``plan`` (its plans file's
    ``arch_kwargs`` with the classes resolved), without the channel counts."""
    return {
        "n_stages": plan.n_stages,
        "features_per_stage": plan.features_per_stage,
        "conv_op": nn.Conv2d,
        "kernel_sizes": plan.kernel_sizes,
        "strides": plan.strides,
        "n_blocks_per_stage": plan.n_blocks_per_stage,
        "n_conv_per_stage_decoder": plan.n_conv_per_stage_decoder,
        "conv_bias": True,
        "norm_op": nn.InstanceNorm2d,
        "norm_op_kwargs": {"eps": 1e-5, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": nn.LeakyReLU,
        "nonlin_kwargs": {"inplace": True},
    }


class NNUNetResEnc(ResidualEncoderUNet):
    """``ResidualEncoderUNet`` built from a :class:`Plan`, without deep supervision, initialised as nnU-Net
    does; state-dict keys are the package's."""

    def __init__(self, plan: Plan, in_channels: int = 3, num_classes: int = 1):
        super().__init__(
            input_channels=in_channels, num_classes=num_classes, deep_supervision=False, **resenc_arch_kwargs(plan)
        )
        self.plan = plan
        self.size_divisor = max(plan.size_divisor)  # for square inputs; the train stage checks img_size with it
        self.apply(self.initialize)
        # only the last (full-resolution) head runs without deep supervision; Identity keeps its index
        heads = self.decoder.seg_layers
        for i in range(len(heads) - 1):
            heads[i] = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (h, w), (dh, dw) = x.shape[-2:], self.plan.size_divisor
        if dh == dw:
            check_divisible(x, dh, "nnU-Net ResEnc")
        elif h % dh or w % dw:
            raise ValueError(
                f"nnU-Net ResEnc needs input height divisible by {dh} and width divisible by {dw}; got {h} x {w}"
            )
        if h // dh * (w // dw) == 1:
            size = h if h == w else (h, w)
            raise ValueError(
                f"nnU-Net ResEnc planned for {self.plan.patch_size[0]} x {self.plan.patch_size[1]} pools {h} x {w} "
                f"to 1 x 1, where InstanceNorm has one value per channel: plan for this size (image_size={size})"
            )
        return super().forward(x)


@register_model(family="CNN", display_name="nnU-Net ResEnc M", min_input_size=MIN_INPUT_SIZE)
def nnunet_resenc(image_size: int | Sequence[int] = 224, pretrained_file: PretrainedFile = None, **kwargs) -> nn.Module:
    """nnU-Net v2 ResEnc M U-Net planned for ``image_size`` (224: 6 stages, 32-512 features); inputs must be
    multiples of the plan's ``2 ** pools`` (32 at 224). Trained from scratch."""
    plan = resenc_plan(image_size)
    return build_model_with_cfg(NNUNetResEnc, "nnunet_resenc", {}, pretrained_file, plan=plan, **kwargs)
