"""Training and inference throughput of registered models, eager and compiled, and against the authors'
DyGLNet: how speed is tracked.

    python -m pipeline.tools.bench --models dyglnet unet --size 224 --batch 4 [--device cpu|cuda] [--json FILE]
    python -m pipeline.tools.bench --models dyglnet --size 128 --batch 8 --compile --authors-code DIR

Each model runs as the pipeline runs it. Training step: forward, the training loss, backward, gradient
clipping and the AdamW step (fp16 autocast with a GradScaler on CUDA, as ``pipeline.train``; compiled
with ``torch.compile`` in the ``compile`` rows). Inference: eval mode under ``torch.inference_mode``
on ``engine.inference.fast_model`` (BatchNorm folded into the convolutions, compiled in the
``compile`` rows), as ``pipeline.evaluate`` runs it.

``--compile`` adds a compiled row beside every eager one. ``--authors-code DIR`` imports the authors'
released DyGLNet (``DIR/model.py``, builder ``shvit_s1_modified``; it needs timm) into this process and
runs it as released: eager, its own eval-mode forward without folding; the training step is the same
step as ours (same loss, clipping and optimiser). The table then gives ours/authors for training and
inference at the same size and batch.

Timing: ``--warmup`` untimed steps per row first (compilation happens there and is reported apart),
then ``--steps`` rounds in which every row of a model runs one timed training step and one timed
inference batch in turn, so that a load change on a shared machine affects all rows alike; images/s is
``batch / median step time``. Memory: peak CUDA allocation on a GPU; on the CPU the growth of the
process's peak resident set during the row's warm-up (an upper bound only for the first row measured).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cli import run
from core.errors import UserError

if TYPE_CHECKING:
    import torch

AUTHORS_BUILDER = "shvit_s1_modified"  # the released DyGLNet configuration (SHViT_s1_cfg)


@dataclass
class Row:
    """One measured model: how it is built and run, and what was measured."""

    model: str
    code: str  # "ours" or "authors"
    compile: bool
    net: Any = None  # the model to train
    infer: Any = None  # the model to run inference with
    params: list = field(default_factory=list)
    optimizer: Any = None
    memory_format: Any = None
    x: Any = None  # the input batch, in the row's memory format
    train_times: list[float] = field(default_factory=list)
    infer_times: list[float] = field(default_factory=list)
    result: dict = field(default_factory=dict)


def _sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@functools.cache
def _authors_module(path: Path):
    name = "authors_dyglnet_model"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # timm's @register_model in the release looks its module up there
    try:
        spec.loader.exec_module(module)
    except ImportError as err:
        del sys.modules[name]
        raise UserError(f"{path}: cannot be imported here: {err}") from err
    return module


def load_authors_model(folder: str | Path):
    """The authors' released DyGLNet, built by ``shvit_s1_modified()`` from ``folder/model.py``."""
    path = Path(folder).resolve() / "model.py"
    if not path.is_file():
        raise UserError(f"--authors-code {folder}: no model.py (expected the DyGLNet release, e.g. DyGLNet-main/)")
    builder = getattr(_authors_module(path), AUTHORS_BUILDER, None)
    if builder is None:
        raise UserError(f"{path}: defines no {AUTHORS_BUILDER}() (the released DyGLNet's builder)")
    return builder()


def _train_step(row: Row, x, y, criterion, scaler, device) -> None:
    import torch

    with torch.autocast(device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
        loss = criterion(row.net(x), y)
    row.optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(row.optimizer)
    torch.nn.utils.clip_grad_norm_(row.params, 1.0)
    scaler.step(row.optimizer)
    scaler.update()


def _infer(row: Row, x, device) -> None:
    import torch

    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
        row.infer(x)


@dataclass(frozen=True)
class BenchSettings:
    """How every row is measured: input side and batch, device, rounds, memory format, the authors' release."""

    size: int
    batch: int
    device: Any  # a torch.device
    steps: int  # timed rounds
    warmup: int  # untimed steps per row first
    channels_last: bool = False  # our models in NHWC
    authors_dir: str | None = None  # the authors' DyGLNet release, measured beside ours


@dataclass(frozen=True)
class _Inputs:
    """What every row of a group trains and infers on: the batch, the loss and the gradient scaler."""

    x: Any
    y: Any
    criterion: Any
    scaler: Any


def build_row(name: str, code: str, compiled: bool, settings: BenchSettings) -> Row:
    """Build the model of one row: its training module, optimiser and inference module."""
    import copy

    import torch

    from engine.inference import fast_model
    from models import create_model
    from models.complexity import count_params

    device = settings.device
    torch.manual_seed(0)
    model = load_authors_model(settings.authors_dir) if code == "authors" else create_model(name)
    model = model.to(device)
    memory_format = torch.channels_last if settings.channels_last and code == "ours" else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    row = Row(name, code, compiled)
    row.params = list(model.parameters())
    row.result["params"] = count_params(model)
    row.optimizer = torch.optim.AdamW(
        row.params, lr=1e-3, weight_decay=3e-5, fused=True if device.type == "cuda" else None
    )
    row.net = torch.compile(model) if compiled else model
    eval_copy = copy.deepcopy(model).eval()
    if code == "ours":
        row.infer, _ = fast_model(
            eval_copy, settings.size, device, fold_bn=True, compile=compiled, batch=settings.batch
        )
        row.infer = row.infer.to(memory_format=memory_format)
    else:
        row.infer = eval_copy  # as released: eval mode, nothing folded
    row.memory_format = memory_format
    return row


def bench_group(name: str, settings: BenchSettings, compile_modes: list[bool]) -> list[dict]:
    """Measure ``name`` (eager and/or compiled, and the authors' DyGLNet when given), rounds interleaved."""
    import torch

    from engine.recipe import BceDiceLoss
    from models import model_info

    size = model_info(name).fixed_input_size or settings.size
    settings = replace(settings, size=size)
    device = settings.device
    criterion = BceDiceLoss()
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    torch.manual_seed(0)
    x = torch.randn(settings.batch, 3, size, size, device=device)
    y = (torch.rand(settings.batch, 1, size, size, device=device) > 0.5).float()
    inputs = _Inputs(x, y, criterion, scaler)

    specs = [("ours", c) for c in compile_modes]
    if settings.authors_dir and name == "dyglnet":
        specs.append(("authors", False))
    rows = [_warm_row(name, code, compiled, settings, inputs) for code, compiled in specs]
    _time_rounds(rows, settings, inputs)
    return [_result(name, row, settings) for row in rows]


def _warm_row(name: str, code: str, compiled: bool, settings: BenchSettings, inputs: _Inputs) -> Row:
    """Build one row and run its untimed warm-up steps (compilation included); record their time and memory."""
    import torch

    device = settings.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss = _rss_mb()
    t0 = time.perf_counter()
    row = build_row(name, code, compiled, settings)
    xr = inputs.x.contiguous(memory_format=row.memory_format)
    row.net.train()
    for _ in range(max(1, settings.warmup)):  # the first call compiles
        _train_step(row, xr, inputs.y, inputs.criterion, inputs.scaler, device)
        _infer(row, xr, device)
    _sync(device)
    row.result["warmup_seconds"] = round(time.perf_counter() - t0, 1)
    if device.type == "cuda":
        row.result["peak_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    else:
        row.result["peak_memory_mb"] = round(max(0.0, _rss_mb() - rss), 1)
    row.x = xr
    return row


def _time_rounds(rows: list[Row], settings: BenchSettings, inputs: _Inputs) -> None:
    """The timed rounds, interleaved: every row runs one training step and one inference batch per round."""
    device = settings.device
    for _ in range(settings.steps):
        for row in rows:
            t0 = time.perf_counter()
            _train_step(row, row.x, inputs.y, inputs.criterion, inputs.scaler, device)
            _sync(device)
            row.train_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            _infer(row, row.x, device)
            _sync(device)
            row.infer_times.append(time.perf_counter() - t0)


def _result(name: str, row: Row, settings: BenchSettings) -> dict:
    """One row of bench.json: the row's setup, its median throughputs, every step's time, warm-up and memory."""
    batch = settings.batch
    train_s, infer_s = statistics.median(row.train_times), statistics.median(row.infer_times)
    return {
        "model": name,
        "code": row.code,
        "compile": row.compile,
        "channels_last": settings.channels_last and row.code == "ours",
        "size": settings.size,
        "batch": batch,
        "device": str(settings.device),
        "params": row.result["params"],
        "train_images_per_s": round(batch / train_s, 3),
        "infer_images_per_s": round(batch / infer_s, 3),
        "train_step_ms": [round(1000 * t, 1) for t in row.train_times],
        "infer_batch_ms": [round(1000 * t, 1) for t in row.infer_times],
        "warmup_seconds": row.result["warmup_seconds"],
        "peak_memory_mb": row.result["peak_memory_mb"],
    }


def ratios(results: list[dict]) -> list[dict]:
    """Ours (each compile mode) over the authors' eager DyGLNet, for training and inference."""
    authors = next((r for r in results if r["code"] == "authors"), None)
    if authors is None:
        return []
    return [
        {
            "ours_compile": r["compile"],
            "train_ratio": round(r["train_images_per_s"] / authors["train_images_per_s"], 3),
            "infer_ratio": round(r["infer_images_per_s"] / authors["infer_images_per_s"], 3),
        }
        for r in results
        if r["code"] == "ours" and r["model"] == "dyglnet"
    ]


TABLE_HEADER = (
    f"{'model':<24} {'code':<8} {'compile':<8} {'size':>5} {'batch':>5} {'params':>11} "
    f"{'train img/s':>12} {'infer img/s':>12} {'warm-up s':>10} {'peak MB':>9}"
)


def _table_line(r: dict) -> str:
    """One result as a line of the printed table (under ``TABLE_HEADER``)."""
    return (
        f"{r['model']:<24} {r['code']:<8} {'yes' if r['compile'] else 'no':<8} {r['size']:>5} {r['batch']:>5} "
        f"{r['params']:>11,} {r['train_images_per_s']:>12.2f} {r['infer_images_per_s']:>12.2f} "
        f"{r['warmup_seconds']:>10.1f} {r['peak_memory_mb']:>9.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.tools.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["dyglnet"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--steps", type=int, default=5, help="timed rounds (one training step + one inference each)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per row first (compilation included)")
    parser.add_argument("--compile", action="store_true", help="also measure every model compiled (torch.compile)")
    parser.add_argument("--channels-last", action="store_true", help="run our models in NHWC memory format")
    parser.add_argument(
        "--authors-code", metavar="DIR", help="the authors' DyGLNet release (DIR/model.py): measured beside ours"
    )
    parser.add_argument("--json", default="bench.json", help="where to write the results (default bench.json)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.batch < 2 or args.size < 16:
        parser.error("--steps >= 1, --warmup >= 0, --batch >= 2 (BatchNorm), --size >= 16")
    if args.size % 16:
        parser.error(f"--size {args.size}: use a multiple of 16 (DyGLNet and the U-Nets need one)")
    import torch

    from engine.runtime import device_name, resolve_device
    from models import model_info

    for name in args.models:
        model_info(name)  # UnknownModelError before any work
    models = list(args.models)
    if args.authors_code:
        load_authors_model(args.authors_code)  # a wrong folder is an error before any work (imports torch, timm)
        if "dyglnet" not in models:
            models.insert(0, "dyglnet")
    device = resolve_device(args.device)
    compile_modes = [False, True] if args.compile else [False]
    settings = BenchSettings(
        size=args.size,
        batch=args.batch,
        device=device,
        steps=args.steps,
        warmup=args.warmup,
        channels_last=args.channels_last,
        authors_dir=args.authors_code,
    )

    print(TABLE_HEADER)
    results = []
    for name in models:
        for r in bench_group(name, settings, compile_modes):
            results.append(r)
            print(_table_line(r), flush=True)
    compared = ratios(results)
    for c in compared:
        print(
            f"ours{' (compiled)' if c['ours_compile'] else ' (eager)'} / authors (eager): "
            f"training {c['train_ratio']:.2f}x, inference {c['infer_ratio']:.2f}x"
        )
    from pipeline.tools.results import header, write

    title = f"Training and inference throughput: {args.size} px, batch {args.batch}, {device.type}"
    record = header(title, "python -m pipeline.tools.bench", argv)
    record["machine"].update(threads=torch.get_num_threads(), device_name=device_name(device))
    write(args.json, {**record, "python": sys.version.split()[0], "rows": results, "ours_over_authors": compared})
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
