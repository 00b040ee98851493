"""Local pretrained weights for model backbones: one loading path for every model, in timm's style.

A model declares its backbones as ``{backbone name: PretrainedCfg}`` (timm's ``pretrained_cfg`` plus
``checkpoint_filter_fn``) and its builder returns ``build_model_with_cfg(...)``, so every builder takes
``pretrained_file`` the same way: a path when the model has one backbone, a mapping
``{backbone name: path}`` (any backbone may be left out) when it has several, and an error when it has
none. Weights are only read from local files, with timm's ``load_state_dict`` (``torch.load(...,
weights_only=True)`` or safetensors; a ``"state_dict"``/``"model"`` wrapper and a ``"module."`` prefix are
removed). After its filter a checkpoint must fit its backbone exactly. Every problem with
``pretrained_file`` raises :class:`PretrainedFileError` (a ``ModelArgumentError``, so the pipeline's
stages report it in one line): a missing file also is a ``FileNotFoundError``; the message names the file
and the backbone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn as nn
from timm.models import load_state_dict

from models.registry import ModelArgumentError

PathLike = str | os.PathLike
StateDict = dict[str, torch.Tensor]
FilterFn = Callable[[StateDict, nn.Module], StateDict]
PretrainedFile = PathLike | Mapping[str, PathLike | None] | None

__all__ = [
    "PretrainedCfg",
    "PretrainedFile",
    "PretrainedFileError",
    "PretrainedFileNotFoundError",
    "architecture_kwargs",
    "build_model_with_cfg",
    "load_pretrained",
    "read_state_dict",
    "resolve_pretrained_files",
]


class PretrainedFileError(ModelArgumentError):
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
    """

    architecture: str
    module: str = ""
    filter_fn: FilterFn | None = None
    unused: tuple[str, ...] = ()


def architecture_kwargs(model_kwargs: Mapping[str, object]) -> dict[str, object]:
    """``model_kwargs`` without ``pretrained_file``: what builds the same architecture when the weights come
    from elsewhere (a trained checkpoint) or do not matter (parameter and FLOP counts)."""
    return {k: v for k, v in model_kwargs.items() if k != "pretrained_file"}


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


def read_state_dict(path: PathLike, what: str) -> StateDict:
    """The tensors of a local checkpoint file; ``what`` names the backbone in error messages."""
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


def load_pretrained(model: nn.Module, cfg: PretrainedCfg, path: PathLike, what: str) -> None:
    """Load the checkpoint at ``path`` into ``model``'s submodule ``cfg.module``; it must fit exactly."""
    path = os.fspath(path)
    module = model.get_submodule(cfg.module)
    state = read_state_dict(path, what)
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
        raise PretrainedFileError(f"{what}: {path!r} does not fit the backbone: {details}")
    module.load_state_dict(state, strict=False)


def build_model_with_cfg(
    model_fn: Callable[..., nn.Module],
    model_name: str,
    pretrained_cfgs: Mapping[str, PretrainedCfg],
    pretrained_file: PretrainedFile = None,
    **kwargs,
) -> nn.Module:
    """``model_fn(**kwargs)`` with the local weight files of ``pretrained_file`` loaded into its backbones.

    The files are checked before the model is built, so a wrong argument fails fast.
    """
    files = resolve_pretrained_files(model_name, pretrained_cfgs, pretrained_file)
    model = model_fn(**kwargs)
    for name, path in files.items():
        cfg = pretrained_cfgs[name]
        load_pretrained(model, cfg, path, f"{model_name} backbone {name!r} ({cfg.architecture})")
    return model
