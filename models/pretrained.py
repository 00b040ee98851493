"""Pretrained weights for model backbones: one loading path for every model, in timm's style.

A model declares its backbones as ``{backbone name: PretrainedCfg}`` (timm's ``pretrained_cfg`` plus
``checkpoint_filter_fn``) and its builder returns ``build_model_with_cfg(...)``, so every builder takes the
weight arguments the same way, per backbone:

* ``pretrained_file``: local files, a path when the model has one backbone, a mapping ``{backbone name: path}``
  (any backbone may be left out) when it has several, and an error when it has none. Files are read with
  timm's ``load_state_dict`` (``torch.load(..., weights_only=True)`` or safetensors; a ``"state_dict"``/``"model"``
  wrapper and a ``"module."`` prefix are removed).
* ``pretrained=True``: the ImageNet weights on the Hugging Face Hub of every backbone that declares a timm
  ``model.tag`` as ``PretrainedCfg.hub`` (and, for reading without torch, in the registry metadata
  ``hub_weights``): those of ``timm.create_model(tag, pretrained=True)``, which resolves the Hub id and the
  cache (:mod:`models.hub`). A file for a backbone takes precedence.

After its filter a checkpoint must fit its backbone exactly. Every problem raises a
:class:`PretrainedWeightsError` (a ``ModelArgumentError``, so the pipeline's stages report it in one line)
naming the model, the backbone and the file or Hub id: :class:`PretrainedFileError` for files (a missing one
also is a ``FileNotFoundError``), :class:`~models.hub.HubWeightsNotCachedError` for Hub weights missing from
the cache offline. :func:`weights_source` says, without importing torch, where a ``models:`` entry's backbones
start from; :func:`loaded_weights` what a built model actually read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.hub import (
    SMP_WEIGHTS,
    HubWeights,
    HubWeightsError,
    PretrainedWeightsError,
    file_sha256,
    hub_errors,
    smp_hub_weights,
    timm_hub_weights,
)
from models.registry import model_info

if TYPE_CHECKING:  # torch and timm are imported when a model is built, not when this module is
    import torch
    import torch.nn as nn

PathLike = str | os.PathLike
StateDict = dict[str, "torch.Tensor"]
FilterFn = Callable[[StateDict, "nn.Module"], StateDict]
PretrainedFile = PathLike | Mapping[str, PathLike | None] | None

__all__ = [
    "PretrainedCfg",
    "PretrainedFile",
    "PretrainedFileError",
    "PretrainedFileNotFoundError",
    "PretrainedWeightsError",
    "architecture_kwargs",
    "build_model_with_cfg",
    "declared_hub_weights",
    "entry_hub_weights",
    "fetch_hub_weights",
    "hub_state_dict",
    "load_pretrained",
    "loaded_weights",
    "read_state_dict",
    "record_loaded_weights",
    "requests_weights",
    "resolve_hub_weights",
    "resolve_pretrained_files",
    "weights_source",
]

_LOADED_ATTR = "_pretrained_weights"  # set on a built model: {backbone: provenance record}


class PretrainedFileError(PretrainedWeightsError):
    """``pretrained_file`` does not fit the model: no backbone to load, unknown names, an unreadable file."""


class PretrainedFileNotFoundError(PretrainedFileError, FileNotFoundError):
    """A weight file named in ``pretrained_file`` does not exist."""


@dataclass(frozen=True)
class PretrainedCfg:
    """Where one backbone's weights go and how a checkpoint file is mapped onto them.

    ``architecture``: what the file holds (a timm model name where there is one); used in messages.
    ``module``: the submodule of the built model that receives the weights (``""``: the whole model).
    ``filter_fn(state_dict, module)``: timm's ``checkpoint_filter_fn``, maps a checkpoint's keys onto
    ``module``'s (another release's layout, renamed parts).
    ``unused``: key prefixes of checkpoint entries the model does not build (a classifier, stages it leaves
    out); an entry with such a prefix is dropped when ``module`` has no key of its name.
    ``hub``: the timm ``model.tag`` whose Hugging Face Hub weights ``pretrained=True`` loads (None: none there).
    """

    architecture: str
    module: str = ""
    filter_fn: FilterFn | None = None
    unused: tuple[str, ...] = ()
    hub: str | None = None


def architecture_kwargs(model_kwargs: Mapping[str, object]) -> dict[str, object]:
    """``model_kwargs`` without ``pretrained_file`` and ``pretrained``: what builds the same architecture when the
    weights come from elsewhere (a trained checkpoint) or do not matter (parameter and FLOP counts)."""
    return {k: v for k, v in model_kwargs.items() if k not in ("pretrained_file", "pretrained")}


def resolve_pretrained_files(
    model_name: str, cfgs: Mapping[str, PretrainedCfg], pretrained_file: PretrainedFile
) -> dict[str, str]:
    """``pretrained_file`` as ``{backbone name: path}``, after checking the names and that every file exists."""
    if pretrained_file is None:
        return {}
    if not cfgs:
        raise PretrainedFileError(
            f"{model_name} has no pretrained backbone (it trains from scratch); pretrained_file must be None"
        )
    if isinstance(pretrained_file, Mapping):
        unknown = sorted(set(pretrained_file) - set(cfgs))
        if unknown:
            raise PretrainedFileError(
                f"{model_name}: unknown backbone(s) {unknown} in pretrained_file; it has {sorted(cfgs)}"
            )
        files = {name: os.fspath(path) for name, path in pretrained_file.items() if path is not None}
    elif len(cfgs) == 1:
        files = {next(iter(cfgs)): os.fspath(pretrained_file)}
    else:
        example = ", ".join(f"{name!r}: path" for name in cfgs)
        raise PretrainedFileError(
            f"{model_name} has {len(cfgs)} backbones: pass pretrained_file as a mapping {{{example}}} "
            "(any of them may be left out)"
        )
    for name, path in files.items():
        if not os.path.isfile(path):
            raise PretrainedFileNotFoundError(
                f"{model_name}: weight file {path!r} for backbone {name!r} ({cfgs[name].architecture}) not found"
            )
    return files


def resolve_hub_weights(
    model_name: str, cfgs: Mapping[str, PretrainedCfg], pretrained: bool, files: Mapping[str, str]
) -> dict[str, HubWeights]:
    """``{backbone name: HubWeights}`` that ``pretrained`` asks for: every backbone with Hub weights and no file."""
    if not isinstance(pretrained, bool):
        raise PretrainedWeightsError(f"{model_name}: pretrained must be true or false, got {pretrained!r}")
    if not pretrained:
        return {}
    if not cfgs:
        raise PretrainedWeightsError(
            f"{model_name} has no pretrained backbone (it trains from scratch); pretrained must be false"
        )
    if not any(cfg.hub for cfg in cfgs.values()):
        raise PretrainedWeightsError(
            f"{model_name}: no backbone of it has weights on the Hugging Face Hub; pass pretrained_file instead"
        )
    return {name: timm_hub_weights(cfg.hub) for name, cfg in cfgs.items() if cfg.hub and name not in files}


def read_state_dict(path: PathLike, what: str) -> StateDict:
    """The tensors of a local checkpoint file; ``what`` names the backbone in error messages."""
    import torch
    from timm.models import load_state_dict

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PretrainedFileNotFoundError(f"{what}: weight file {path!r} not found")
    try:
        state = load_state_dict(path)
    except Exception as err:  # unpickling, zip and safetensors errors share no narrower base class
        raise PretrainedFileError(f"{what}: cannot read weight file {path!r}: {err}") from err
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedFileError(f"{what}: {path!r} does not hold a state dict of tensors")
    return dict(state)


def hub_state_dict(hub: HubWeights, what: str) -> StateDict:
    """The state dict of timm's ``hub.name`` with its Hub weights: ``timm.create_model(..., pretrained=True)``
    loads them from ``hub.id`` (downloading into the hub cache unless it is there). The global RNG is left as
    it was, so a model built with Hub weights draws the same random numbers afterwards as one built without."""
    import timm
    import torch

    overlay = {"hf_hub_id": hub.id, "source": "hf-hub"}  # exactly the id weights_source reports
    with hub_errors(hub, what), torch.random.fork_rng(devices=[]):
        source = timm.create_model(hub.name, pretrained=True, pretrained_cfg_overlay=overlay)
    return source.state_dict()


def _load_state(model: nn.Module, cfg: PretrainedCfg, state: StateDict, origin: str, what: str) -> None:
    """Load ``state`` (a checkpoint from ``origin``) into ``model``'s submodule ``cfg.module``; it must fit exactly."""
    module = model.get_submodule(cfg.module)
    if cfg.filter_fn is not None:
        state = cfg.filter_fn(state, module)
    target = module.state_dict()
    state = {k: v for k, v in state.items() if k in target or not k.startswith(cfg.unused)}
    problems = {
        # old BatchNorm checkpoints have no step counters; the module keeps its own
        "missing": [k for k in target if k not in state and not k.endswith("num_batches_tracked")],
        "unexpected": [k for k in state if k not in target],
        "mis-shaped": [
            f"{k} {tuple(v.shape)} (model: {tuple(target[k].shape)})"
            for k, v in state.items()
            if k in target and v.shape != target[k].shape
        ],
    }
    if any(problems.values()):
        details = "; ".join(f"{len(keys)} {kind}, e.g. {keys[:3]}" for kind, keys in problems.items() if keys)
        raise PretrainedFileError(f"{what}: {origin} does not fit the backbone: {details}")
    module.load_state_dict(state, strict=False)


def load_pretrained(model: nn.Module, cfg: PretrainedCfg, path: PathLike, what: str) -> None:
    """Load the checkpoint at ``path`` into ``model``'s submodule ``cfg.module``; it must fit exactly."""
    path = os.fspath(path)
    _load_state(model, cfg, read_state_dict(path, what), repr(path), what)


def record_loaded_weights(model: nn.Module, records: Mapping[str, dict]) -> None:
    """Add ``{backbone: provenance record}`` to what :func:`loaded_weights` reports for ``model``."""
    current = dict(getattr(model, _LOADED_ATTR, {}))
    current.update(records)
    object.__setattr__(model, _LOADED_ATTR, current)  # a plain attribute, outside the state dict


def loaded_weights(model: nn.Module) -> dict[str, dict]:
    """``{backbone: record}`` of the weights a model was built with (empty: from scratch). A record is
    ``{"source": "file", "path", "sha256"}`` or ``{"source": "hub", "library", "name", "id", "revision",
    "commit", "file", "sha256"}`` (the Hub snapshot commit and the file actually read from the cache)."""
    return dict(getattr(model, _LOADED_ATTR, {}))


def build_model_with_cfg(
    model_fn: Callable[..., nn.Module],
    model_name: str,
    pretrained_cfgs: Mapping[str, PretrainedCfg],
    pretrained_file: PretrainedFile = None,
    pretrained: bool = False,
    **kwargs,
) -> nn.Module:
    """``model_fn(**kwargs)`` with its backbones' weights: the local files of ``pretrained_file`` and, with
    ``pretrained``, the Hub weights of every other backbone that has some (the rest keep their own init).

    The arguments are checked before the model is built, so a wrong one fails fast.
    """
    files = resolve_pretrained_files(model_name, pretrained_cfgs, pretrained_file)
    hubs = resolve_hub_weights(model_name, pretrained_cfgs, pretrained, files)
    model = model_fn(**kwargs)
    records = {}
    for name, path in files.items():
        cfg = pretrained_cfgs[name]
        load_pretrained(model, cfg, path, f"{model_name} backbone {name!r} ({cfg.architecture})")
        records[name] = {"source": "file", "path": path, "sha256": file_sha256(path)}
    for name, hub in hubs.items():
        cfg = pretrained_cfgs[name]
        what = f"{model_name} backbone {name!r} ({cfg.architecture})"
        _load_state(model, cfg, hub_state_dict(hub, what), hub.id, what)
        records[name] = hub.record()
    record_loaded_weights(model, records)
    return model


# ----------------------------------------------------------------------------------------------
# Without torch: what a params.yaml entry starts from
# ----------------------------------------------------------------------------------------------


def declared_hub_weights(builder: str, model_kwargs: Mapping[str, Any] | None = None) -> dict[str, HubWeights | None]:
    """``{backbone: HubWeights or None}`` of a registered builder, from its registry metadata (nothing imported):
    ``hub_weights`` (every backbone, None where the Hub has no weights for it), or for smp builders (``smp_encoder``,
    the default encoder) the encoder that ``model_kwargs`` or the builder names; an smp encoder's weights are looked
    up only when ``model_kwargs`` has ``pretrained: true`` (a ``tu-`` one needs timm). An smp encoder without
    ImageNet weights raises :class:`~models.hub.HubWeightsError`."""
    kwargs = model_kwargs or {}
    info = model_info(builder)
    if info.smp_encoder is not None:
        encoder = str(kwargs.get("encoder") or info.smp_encoder)
        return {"encoder": smp_hub_weights(encoder) if kwargs.get("pretrained") is True else None}
    return {name: timm_hub_weights(tag) if tag else None for name, tag in (info.hub_weights or {}).items()}


def _pretrained_files(backbones: Mapping[str, object], spec: Any) -> dict[str, str]:
    if isinstance(spec, Mapping):
        return {str(k): os.fspath(v) for k, v in spec.items() if v is not None}
    if spec is None:
        return {}
    return {next(iter(backbones)) if len(backbones) == 1 else "pretrained_file": os.fspath(spec)}


def entry_hub_weights(builder: str, model_kwargs: Mapping[str, Any] | None) -> dict[str, HubWeights]:
    """The Hub weights that ``create_model(builder, **model_kwargs)`` loads: ``{backbone: HubWeights}`` for every
    backbone with Hub weights and no ``pretrained_file``, when ``pretrained`` is true. Imports no torch (except
    for an smp ``tu-`` encoder); :class:`PretrainedWeightsError` when the build would refuse ``pretrained``."""
    kwargs = model_kwargs or {}
    if kwargs.get("pretrained") is not True:
        return {}
    try:
        backbones = declared_hub_weights(builder, kwargs)
    except HubWeightsError as err:
        raise PretrainedWeightsError(f"{builder}: {err}") from err
    if not any(backbones.values()):
        raise PretrainedWeightsError(
            f"{builder}: no backbone of it has weights on the Hugging Face Hub; pretrained must be false"
        )
    files = _pretrained_files(backbones, kwargs.get("pretrained_file"))
    return {name: hub for name, hub in backbones.items() if hub is not None and name not in files}


def requests_weights(model_kwargs: Mapping[str, Any] | None) -> bool:
    """Whether ``model_kwargs`` ask for any pretrained weights (``pretrained: true`` or a ``pretrained_file``),
    read from the arguments alone: whether the model can take them is the build's (and
    :func:`weights_source`'s) check."""
    kwargs = model_kwargs or {}
    return kwargs.get("pretrained") is True or bool(_pretrained_files({"": None}, kwargs.get("pretrained_file")))


def weights_source(builder: str, model_kwargs: Mapping[str, Any] | None) -> dict | None:
    """Where the backbones of ``create_model(builder, **model_kwargs)`` start from; None: all from scratch.

    Imports no torch (it reads the builder's module source, and smp's for smp encoders; only an smp ``tu-``
    encoder with ``pretrained`` imports timm). For the fingerprint of a ``models:`` entry and for provenance::

        {"kind": "hub", "ids": {"resnet": "timm/resnet50.tv_in1k", "swin": "timm/swin_tiny_patch4_window7_224.ms_in1k"}}
        {"kind": "hub", "ids": {"encoder": "smp-hub/resnet34.imagenet@7a57b34f723329ff020b3f8bc41771163c519d0c"}}
        {"kind": "file", "files": {"res2net": "weights/res2net50d.pth"}}
        {"kind": "hub+file", "ids": {...}, "files": {...}}

    An id is ``repo@revision`` where the library pins a revision and the bare repository where it does not
    (timm pins none: the Hub's ``main``). ``files`` are the ``pretrained_file`` paths by backbone (a file takes
    precedence over the Hub); a path the model cannot take (no backbone, ambiguous) is listed under
    ``"pretrained_file"`` and the build then fails. Arguments the build refuses (``pretrained`` on a model without
    Hub weights) raise :class:`PretrainedWeightsError`, a one-line ``ModelArgumentError``.
    """
    kwargs = dict(model_kwargs or {})
    ids = {name: hub.id for name, hub in entry_hub_weights(builder, kwargs).items()}
    files = _pretrained_files(declared_hub_weights(builder), kwargs.get("pretrained_file"))
    if not ids and not files:
        return None
    source: dict[str, Any] = {"kind": "+".join(k for k, v in (("hub", ids), ("file", files)) if v)}
    if ids:
        source["ids"] = ids
    if files:
        source["files"] = files
    return source


def fetch_hub_weights(hub: HubWeights, what: str) -> None:
    """Bring ``hub`` into the hub cache the way a build loads it (timm or smp downloading; nothing when cached)."""
    if hub.library == "timm":
        hub_state_dict(hub, what)
        return
    from segmentation_models_pytorch.encoders import get_encoder

    with hub_errors(hub, what):
        get_encoder(hub.name, weights=SMP_WEIGHTS)
