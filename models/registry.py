"""A timm-style model registry: ``@register_model`` builders, ``create_model(name)``, ``list_models()``.

Names and metadata come from reading the source: every module-level function decorated with
``@register_model(...)`` in ``models/*.py`` and ``baselines/*.py`` is found with :mod:`ast`, without
importing torch or the model's module. A model's module is imported only when that model is built
(:func:`create_model`), so listing models, reading a display name in the report stage or computing a
model's source files (:func:`models.files.model_sources`, used by the DVC pipeline) costs milliseconds.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError

if TYPE_CHECKING:
    import torch.nn as nn

MODEL_PACKAGES = ("models", "baselines")  # where registered builders live

ModelBuilder = Callable[..., "nn.Module"]


class UnknownModelError(UserError, KeyError):
    """A model name that no ``@register_model`` function defines."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


class ModelArgumentError(UserError, ValueError):
    """A builder argument the model cannot take (a weight file that is missing or does not fit, a download
    request): the user's input, not a bug; the message names the argument and, for a file, the file."""


@dataclass(frozen=True)
class ModelInfo:
    """What the harness knows about a registered model besides its builder."""

    name: str
    module: str  # the module that defines the builder, e.g. ``baselines.unet``
    family: str = "Other"  # report group: CNN, Transformer, Hybrid, Ours, Ablation, ...
    display_name: str = ""  # name in the paper's tables; defaults to ``name``
    min_input_size: int = 64  # smallest square input the model accepts (smoke tests use it)
    fixed_input_size: int | None = None  # set when the model accepts exactly one size
    # pretrained backbones on the Hugging Face Hub: {backbone: "<timm model>.<tag>" or None (none there)}
    hub_weights: dict[str, str | None] | None = None
    smp_encoder: str | None = None  # an smp model's default encoder (its ImageNet weights come through smp)


_METADATA_KEYS = ("family", "display_name", "min_input_size", "fixed_input_size", "hub_weights", "smp_encoder")
_BUILDERS: dict[str, ModelBuilder] = {}  # filled as modules are imported
_EXTRA: dict[str, ModelInfo] = {}  # registered at run time outside the scanned folders (tests, notebooks)


def register_model(
    fn: ModelBuilder | None = None,
    *,
    name: str | None = None,
    family: str = "Other",
    display_name: str | None = None,
    min_input_size: int = 64,
    fixed_input_size: int | None = None,
    hub_weights: dict[str, str | None] | None = None,
    smp_encoder: str | None = None,
):
    """Register a builder under its function name (or ``name``).

    Usable bare (``@register_model``) or with metadata (``@register_model(family="CNN")``). In
    ``models/`` and ``baselines/`` use it as a decorator on a module-level function with literal
    keyword arguments (or module-level constants): that is what the registry reads.
    """

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        key = name or builder.__name__
        old = _BUILDERS.get(key)
        if old is not None and old.__qualname__ != builder.__qualname__:
            raise ValueError(f"model {key!r} is already registered by {old.__module__}")
        indexed = _index().get(key)
        if indexed is not None and indexed.module != builder.__module__:
            raise ValueError(f"model {key!r} is already registered by {indexed.module}")
        _BUILDERS[key] = builder
        if indexed is None:
            _EXTRA[key] = ModelInfo(
                name=key,
                module=builder.__module__,
                family=family,
                display_name=display_name or key,
                min_input_size=fixed_input_size or min_input_size,
                fixed_input_size=fixed_input_size,
                hub_weights=hub_weights,
                smp_encoder=smp_encoder,
            )
        return builder

    return decorator(fn) if fn is not None else decorator


# ----------------------------------------------------------------------------------------------
# Reading the source
# ----------------------------------------------------------------------------------------------


def _module_constants(tree: ast.Module) -> dict[str, Any]:
    """Module-level ``NAME = <literal>`` assignments."""
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        value = getattr(node, "value", None)
        for target in targets:
            if isinstance(target, ast.Name) and value is not None:
                try:
                    constants[target.id] = ast.literal_eval(value)
                except ValueError:
                    pass
    return constants


def _decorator_metadata(decorator: ast.expr, constants: dict[str, Any], where: str) -> dict[str, Any] | None:
    """The keyword arguments of a ``register_model`` decorator, or None for another decorator."""
    call = decorator if isinstance(decorator, ast.Call) else None
    target = call.func if call else decorator
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
    if name != "register_model":
        return None
    values = {}
    for kw in call.keywords if call else []:
        if isinstance(kw.value, ast.Name) and kw.value.id in constants:
            values[kw.arg] = constants[kw.value.id]
            continue
        if isinstance(kw.value, ast.Subscript) and getattr(kw.value.value, "id", None) in constants:
            try:  # CONSTANT["key"]
                values[kw.arg] = constants[kw.value.value.id][ast.literal_eval(kw.value.slice)]
                continue
            except (ValueError, KeyError, TypeError):
                pass
        try:
            values[kw.arg] = ast.literal_eval(kw.value)
        except ValueError as err:
            raise ValueError(
                f"{where}: register_model({kw.arg}=...) must be a literal, a module-level constant or an item of one"
            ) from err
    return values


def _scan_file(path: Path, module: str) -> list[ModelInfo]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    constants = _module_constants(tree)
    found = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            meta = _decorator_metadata(decorator, constants, f"{path}:{node.lineno}")
            if meta is None:
                continue
            key = meta.pop("name", None) or node.name
            fixed = meta.get("fixed_input_size")
            found.append(
                ModelInfo(
                    name=key,
                    module=module,
                    family=meta.get("family", "Other"),
                    display_name=meta.get("display_name") or key,
                    min_input_size=fixed or meta.get("min_input_size", 64),
                    fixed_input_size=fixed,
                    hub_weights=meta.get("hub_weights"),
                    smp_encoder=meta.get("smp_encoder"),
                )
            )
    return found


@functools.cache
def _index() -> dict[str, ModelInfo]:
    """Every ``@register_model`` function of ``models/`` and ``baselines/``, read from the source."""
    index: dict[str, ModelInfo] = {}
    for package in MODEL_PACKAGES:
        folders = importlib.import_module(package).__path__  # a plain list of folders; the packages are light
        for path in sorted(p for folder in folders for p in Path(folder).glob("*.py")):
            if path.name.startswith("_"):
                continue
            for info in _scan_file(path, f"{package}.{path.stem}"):
                if info.name in index:
                    raise ValueError(
                        f"model {info.name!r} is registered twice: in {index[info.name].module} and {info.module}"
                    )
                index[info.name] = info
    return index


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching a shell-style ``pattern`` (imports nothing)."""
    return sorted(n for n in {*_index(), *_EXTRA} if fnmatch.fnmatch(n, pattern))


def model_info(name: str) -> ModelInfo:
    """Registry metadata of ``name`` (module, family, display name, accepted input sizes); imports nothing."""
    info = _index().get(name) or _EXTRA.get(name)
    if info is None:
        raise UnknownModelError(
            f"unknown model {name!r}; registered models: {', '.join(list_models())} (python -m models lists them)"
        )
    return info


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name``; keyword arguments go to its builder."""
    info = model_info(name)
    if name not in _BUILDERS:
        importlib.import_module(info.module)
    if name not in _BUILDERS:
        raise RuntimeError(f"{info.module} was imported but registered no builder {name!r}")
    return _BUILDERS[name](**kwargs)
