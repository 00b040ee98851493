"""Extra baselines from segmentation_models.pytorch (smp, qubvel-org/segmentation_models.pytorch).

Not part of the paper's Table 7: well-known encoder-decoder models registered through the same registry
(family "SMP") so that they run in the same harness:

- ``smp_unet_resnet34``: ``Unet`` + resnet34; any H, W (the decoder resizes to each skip); 32 registered
  as the minimum (one pixel at the deepest stage).
- ``smp_unetplusplus_resnet34``: ``UnetPlusPlus`` + resnet34; H, W multiples of 32.
- ``smp_deeplabv3plus_resnet50``: ``DeepLabV3Plus`` + resnet50 at output stride 16; multiples of 16.
- ``smp_segformer_mitb1``: ``Segformer`` + mit_b1; multiples of 32.
- ``smp``: any architecture and encoder (``arch``, ``encoder``); sizes as the chosen smp model.

``smp`` is the generic form: ``create_model("smp", arch="FPN", encoder="resnet18")``; with no arguments
it builds ``Unet`` + ``resnet34`` (the same model as ``smp_unet_resnet34``).

Every model has 3 input channels and 1 output channel, and a randomly initialised encoder unless
``pretrained=True`` (smp's own ``encoder_weights="imagenet"``: smp fetches the encoder's ImageNet weights from
its pinned Hugging Face Hub revision, ``smp-hub/<encoder>.imagenet``, through the hub cache; ``tu-`` encoders:
timm's weights) or ``pretrained_file``, an optional local file holding a ``state_dict`` of the *encoder* (or
``{"encoder": path}``; e.g. a torchvision/timm ResNet ImageNet checkpoint, whose classifier keys are dropped,
or an NVlabs/smp ``mit_b1`` checkpoint), loaded into ``model.encoder`` through ``models/pretrained.py``:
missing, unexpected or mis-shaped keys raise a ``ValueError`` that names the file and the encoder. The file
takes precedence over ``pretrained``. ``encoder_weights`` itself is refused (one way to ask, one record of it).

Difference from plain smp: smp raises a ``RuntimeError`` when H or W is not a multiple of the encoder's
output stride; the models built here raise a ``ValueError`` instead (a forward pre-hook performs
the same check first), as the harness expects. The returned modules are ordinary smp models, so
their ``state_dict`` is interchangeable with smp's.
"""

from __future__ import annotations

import contextlib

import segmentation_models_pytorch as smp
import torch
import torch.nn as nn

from models.hub import hub_errors, smp_hub_weights
from models.pretrained import (
    PretrainedCfg,
    PretrainedFile,
    PretrainedWeightsError,
    build_model_with_cfg,
    record_loaded_weights,
    resolve_pretrained_files,
)
from models.registry import ModelArgumentError, register_model

__all__ = [
    "smp_deeplabv3plus_resnet50",
    "smp_model",
    "smp_segformer_mitb1",
    "smp_unet_resnet34",
    "smp_unetplusplus_resnet34",
]

FAMILY = "SMP"
# builder -> its encoder (the generic ``smp``: the default), the registry metadata smp_encoder of each builder
SMP_ENCODERS = {
    "smp": "resnet34",
    "smp_unet_resnet34": "resnet34",
    "smp_unetplusplus_resnet34": "resnet34",
    "smp_deeplabv3plus_resnet50": "resnet50",
    "smp_segformer_mitb1": "mit_b1",
}
# ImageNet classifiers that encoder checkpoints may carry and smp's encoders do not build
_CLASSIFIER_KEYS = ("fc.", "head.", "classifier.", "last_linear.")


def _require_divisible_input(model: nn.Module, args: tuple) -> None:
    """Forward pre-hook: smp's own input-size check, raising ``ValueError`` instead of RuntimeError."""
    if torch.jit.is_tracing() or torch.jit.is_scripting() or not model.requires_divisible_input_shape:
        return
    stride = model.encoder.output_stride
    h, w = args[0].shape[-2:]
    if h % stride or w % stride:
        raise ValueError(
            f"{type(model).__name__} ({model.encoder.__class__.__name__}) needs input height and width "
            f"divisible by {stride}; got {h}x{w} (pad the image to the next multiple)"
        )


def _create(arch: str, encoder: str, encoder_weights: str | bool | None = None, **kwargs) -> nn.Module:
    model = smp.create_model(
        arch, encoder_name=encoder, encoder_weights=encoder_weights, in_channels=3, classes=1, **kwargs
    )
    model.register_forward_pre_hook(_require_divisible_input)
    return model


def _build(
    name: str, arch: str, encoder: str, pretrained_file: PretrainedFile, pretrained: bool = False, **kwargs
) -> nn.Module:
    if kwargs.pop("encoder_weights", None) is not None:
        raise ModelArgumentError(
            "encoder_weights is not taken here: pass pretrained=True for smp's ImageNet weights (downloaded "
            "into the Hugging Face cache) or a local pretrained_file"
        )
    if not isinstance(pretrained, bool):
        raise PretrainedWeightsError(f"{name}: pretrained must be true or false, got {pretrained!r}")
    cfgs = {"encoder": PretrainedCfg(f"{arch}/{encoder} encoder", module="encoder", unused=_CLASSIFIER_KEYS)}
    hub = None
    if pretrained and "encoder" not in resolve_pretrained_files(name, cfgs, pretrained_file):
        try:
            hub = smp_hub_weights(encoder)
        except ModelArgumentError as err:
            raise PretrainedWeightsError(f"{name}: {err}") from err
    weights = None if hub is None else True if encoder.startswith("tu-") else "imagenet"  # smp's own spellings
    with hub_errors(hub, f"{name} encoder {encoder!r}") if hub else contextlib.nullcontext():
        model = build_model_with_cfg(
            _create, name, cfgs, pretrained_file, arch=arch, encoder=encoder, encoder_weights=weights, **kwargs
        )
    if hub is not None:
        record_loaded_weights(model, {"encoder": hub.record()})
    return model


@register_model(
    name="smp", family=FAMILY, display_name="smp (generic)", min_input_size=32, smp_encoder=SMP_ENCODERS["smp"]
)
def smp_model(
    arch: str = "Unet",
    encoder: str = SMP_ENCODERS["smp"],
    pretrained_file: PretrainedFile = None,
    pretrained: bool = False,
    **kwargs,
) -> nn.Module:
    """Any smp architecture/encoder pair, 3 -> 1 channels, random init (registered as ``smp``).

    ``arch`` is an smp architecture name (``Unet``, ``UnetPlusPlus``, ``FPN``, ``DeepLabV3Plus``,
    ``Segformer``, ...; case-insensitive), ``encoder`` an smp encoder name (``resnet18``, ``mit_b2``,
    ``tu-<timm name>``, ...). Extra keyword arguments go to the smp model class (e.g.
    ``decoder_channels``). ``pretrained``: smp's ImageNet encoder weights from the Hub; ``pretrained_file``:
    a local encoder state_dict instead, loaded strictly.
    The registered ``min_input_size`` (32) is that of the default ``Unet``/``resnet34``.
    """
    return _build("smp", arch, encoder, pretrained_file, pretrained, **kwargs)


@register_model(
    family=FAMILY,
    display_name="U-Net (ResNet-34, smp)",
    min_input_size=32,
    smp_encoder=SMP_ENCODERS["smp_unet_resnet34"],
)
def smp_unet_resnet34(pretrained_file: PretrainedFile = None, pretrained: bool = False, **kwargs) -> nn.Module:
    """smp ``Unet`` with a ResNet-34 encoder (24.44 M params); accepts any H, W (decoder resizes)."""
    return _build("smp_unet_resnet34", "Unet", SMP_ENCODERS["smp_unet_resnet34"], pretrained_file, pretrained, **kwargs)


@register_model(
    family=FAMILY,
    display_name="UNet++ (ResNet-34, smp)",
    min_input_size=32,
    smp_encoder=SMP_ENCODERS["smp_unetplusplus_resnet34"],
)
def smp_unetplusplus_resnet34(pretrained_file: PretrainedFile = None, pretrained: bool = False, **kwargs) -> nn.Module:
    """smp ``UnetPlusPlus`` with a ResNet-34 encoder (26.08 M params); H, W multiples of 32."""
    return _build(
        "smp_unetplusplus_resnet34",
        "UnetPlusPlus",
        SMP_ENCODERS["smp_unetplusplus_resnet34"],
        pretrained_file,
        pretrained,
        **kwargs,
    )


@register_model(
    family=FAMILY,
    display_name="DeepLabV3+ (ResNet-50, smp)",
    min_input_size=16,
    smp_encoder=SMP_ENCODERS["smp_deeplabv3plus_resnet50"],
)
def smp_deeplabv3plus_resnet50(pretrained_file: PretrainedFile = None, pretrained: bool = False, **kwargs) -> nn.Module:
    """smp ``DeepLabV3Plus``, ResNet-50 encoder at output stride 16 (26.68 M params); H, W multiples of 16."""
    return _build(
        "smp_deeplabv3plus_resnet50",
        "DeepLabV3Plus",
        SMP_ENCODERS["smp_deeplabv3plus_resnet50"],
        pretrained_file,
        pretrained,
        **kwargs,
    )


@register_model(
    family=FAMILY,
    display_name="SegFormer (MiT-B1, smp)",
    min_input_size=32,
    smp_encoder=SMP_ENCODERS["smp_segformer_mitb1"],
)
def smp_segformer_mitb1(pretrained_file: PretrainedFile = None, pretrained: bool = False, **kwargs) -> nn.Module:
    """smp ``Segformer`` with a MiT-B1 encoder (13.68 M params); H, W multiples of 32."""
    return _build(
        "smp_segformer_mitb1", "Segformer", SMP_ENCODERS["smp_segformer_mitb1"], pretrained_file, pretrained, **kwargs
    )
