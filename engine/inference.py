"""The fast inference path shared by evaluate, predict and the benchmarks (models come from ``engine.factory``).

The fast path (:func:`fast_model`) changes how a forward pass is computed, never what it computes:

- **BatchNorm folding** (on by default): every ``nn.BatchNorm2d`` whose input is the output of an
  ``nn.Conv2d`` is folded into that convolution (``torch.nn.utils.fusion.fuse_conv_bn_eval``: scaled
  weights, shifted bias) and replaced by ``nn.Identity``, on a copy of the model. The pairs are found by
  running one example through the model with hooks (the BatchNorm's input tensor *is* the convolution's
  output, each module called once), so pairs written as attributes (``self.bn(self.conv(x))``) are found
  as well as those in ``nn.Sequential``; subclasses (timm's ``BatchNormAct2d``) are left alone. The copy
  is then checked against the original on the example: when an output differs by more than
  ``FOLD_TOLERANCE`` relative to the output's scale (a convolution whose output is also used elsewhere),
  only the pairs that follow each other inside an ``nn.Sequential`` are folded; when that still differs,
  the model is used unfolded. Eval mode only: the running statistics are baked into the weights.
- **torch.compile** (opt-in: ``evaluate.compile`` / ``--compile``): compiled and run once on an example
  at start-up, so that a missing compiler is an error before any work, not in the middle of it.
"""

from __future__ import annotations

import copy
from collections import Counter

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from core.errors import UserError

FOLD_TOLERANCE = 1e-4


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def _outputs(result: object) -> list[torch.Tensor]:
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, dict):
        return [t for v in result.values() for t in _outputs(v)]
    if isinstance(result, (list, tuple)):
        return [t for v in result for t in _outputs(v)]
    return []


def _max_relative_difference(a: object, b: object) -> float:
    xs, ys = _outputs(a), _outputs(b)
    if len(xs) != len(ys) or not xs:
        return float("inf")
    worst = 0.0
    for x, y in zip(xs, ys, strict=True):
        if x.shape != y.shape:
            return float("inf")
        x, y = x.float(), y.float()
        scale = max(1.0, float(x.abs().max()))
        worst = max(worst, float((x - y).abs().max()) / scale)
    return worst


def conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(conv, batchnorm) module names where the BatchNorm2d's input is that Conv2d's output in a forward pass."""
    return _traced_pairs(model, example)[0]


def _traced_pairs(model: nn.Module, example: torch.Tensor) -> tuple[list[tuple[str, str]], object]:
    """:func:`conv_bn_pairs` and the model's output on ``example``."""
    calls: Counter[str] = Counter()
    produced: dict[int, tuple[str, torch.Tensor]] = {}  # the tensors are kept so that ids stay unique
    consumed: list[tuple[str, torch.Tensor]] = []
    handles = []
    for name, module in model.named_modules():
        if type(module) is nn.Conv2d:

            def after_conv(mod, args, out, name=name):
                calls[name] += 1
                produced[id(out)] = (name, out)

            handles.append(module.register_forward_hook(after_conv))
        elif type(module) is nn.BatchNorm2d:

            def before_bn(mod, args, name=name):
                calls[name] += 1
                consumed.append((name, args[0]))

            handles.append(module.register_forward_pre_hook(before_bn))
    try:
        with torch.no_grad():
            output = model(example)
    finally:
        for handle in handles:
            handle.remove()
    pairs = []
    for bn_name, tensor in consumed:
        hit = produced.get(id(tensor))
        if hit is None or hit[1] is not tensor or calls[hit[0]] != 1 or calls[bn_name] != 1:
            continue
        conv, bn = model.get_submodule(hit[0]), model.get_submodule(bn_name)
        if conv.out_channels == bn.num_features and bn.running_mean is not None and bn.running_var is not None:
            pairs.append((hit[0], bn_name))
    return pairs, output


def _in_sequential(model: nn.Module, conv_name: str, bn_name: str) -> bool:
    parent, _, conv_child = conv_name.rpartition(".")
    bn_parent, _, bn_child = bn_name.rpartition(".")
    if parent != bn_parent:
        return False
    container = model.get_submodule(parent) if parent else model
    if not isinstance(container, nn.Sequential):
        return False
    names = list(container._modules)
    return conv_child in names and names.index(conv_child) + 1 == names.index(bn_child)


def _fold(model: nn.Module, pairs: list[tuple[str, str]]) -> nn.Module:
    folded = copy.deepcopy(model)
    for conv_name, bn_name in pairs:
        conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
        _set(folded, conv_name, fuse_conv_bn_eval(conv, bn))
        _set(folded, bn_name, nn.Identity())
    return folded


def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, int]:
    """(an eval-mode copy of ``model`` with Conv2d+BatchNorm2d pairs folded, number folded); see the module doc.

    Returns ``(model, 0)`` unchanged when no pair is found or folding would change the output.
    """
    model.eval()
    pairs, reference = _traced_pairs(model, example)
    if not pairs:
        return model, 0
    with torch.no_grad():
        for candidates in (pairs, [p for p in pairs if _in_sequential(model, *p)]):
            if not candidates:
                break
            folded = _fold(model, candidates)
            if _max_relative_difference(reference, folded(example)) <= FOLD_TOLERANCE:
                return folded, len(candidates)
    return model, 0


def compile_model(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """``torch.compile(model)``, compiled now by one forward pass of ``example``; UserError if that fails."""
    compiled = torch.compile(model)
    try:
        with torch.inference_mode():
            compiled(example)
    except Exception as err:  # noqa: BLE001 - inductor raises many types; any of them means "cannot compile here"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"--compile: torch.compile failed for {type(model).__name__}: {first}") from err
    return compiled


def example_input(size: int, batch: int = 1, device: torch.device | str = "cpu") -> torch.Tensor:
    """A fixed (seeded) normal input of shape (batch, 3, size, size)."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, size, size, generator=generator).to(device)


def fast_model(
    model: nn.Module,
    size: int,
    device: torch.device,
    fold_bn: bool = True,
    compile: bool = False,
    batch: int = 1,
) -> tuple[nn.Module, dict]:
    """The eval-mode model on the fast path, and what was done: ``{"fold_bn": pairs folded, "compile": bool}``.

    ``batch`` is the batch size the compiled model will see (it is compiled for that shape).
    """
    model = model.to(device).eval()
    info = {"fold_bn": 0, "compile": False}
    if fold_bn:
        model, info["fold_bn"] = fold_batchnorm(model, example_input(size, 1, device))
    if compile:
        model = compile_model(model, example_input(size, batch, device))
        info["compile"] = True
    return model, info
