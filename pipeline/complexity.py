"""Complexity of one ``models:`` entry: parameters, fvcore GFLOPs and measured latency.

    python -m pipeline.complexity --model KEY --out results/complexity/KEY.json
                                  [--size 224] [--repeats 20] [--warmup 3] [--fold-bn] [--compile]

``KEY`` is a run name of ``models:`` in params.yaml (any registered model name works too): the model is
built with the entry's builder and ``model_kwargs`` without the weight arguments (random weights, seed 0); the
JSON's ``model`` and ``builder`` are the key and the builder. The entry's labels and recipe are not recorded:
the stage reads the architecture's fingerprint only (``architectures.KEY`` of code_fingerprints.yaml), so that
a recipe change does not remeasure.

Latency: forward passes of one 3 x size x size image in eval mode under ``torch.inference_mode()``:
``warmup`` untimed passes, then ``repeats`` timed ones. The JSON gives the median (``cpu_latency_ms``),
the interquartile range (``cpu_latency_iqr_ms``, p75 - p25) and the 10th/90th percentiles
(``cpu_latency_p10_ms``/``cpu_latency_p90_ms``) over the timed runs, on the CPU with this process's
threads (``cpu_threads``), and the same ``gpu_*`` keys on a CUDA device when there is one (synchronised
before and after each pass). By default the model runs as built (eager); ``--fold-bn`` and
``--compile`` measure the fast path of ``engine.inference`` that evaluate and predict use, and
``inference`` in the JSON says which path was measured. Parameters and GFLOPs are those of the model
as built. Models that accept one input size only (``fixed_input_size``) are measured at that size
(``input_size`` in the JSON). GFLOPs are also counted at the size the models train at (``--train-size``,
default ``prepare.size``): ``gflops_fvcore_train_size`` at ``train_size`` (null where the model does not run
at that size). Defaults come from the ``complexity:`` section of params.yaml.

``machine`` records what measured the latency: ``cpu`` (model name from /proc/cpuinfo), ``gpu`` (the CUDA
device's name, or null), ``torch`` (version), ``threads`` (torch's CPU threads) and ``dtype`` (of the weights
and the input). The report never sets latencies of two machines in one column.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from core.cli import run
from core.errors import UserError
from core.fsutil import atomic_write_json
from engine.params import ModelSpec, load_params
from models.registry import model_info

# torch and the model code are imported in `measure`, after the arguments have been checked.


def latency_stats(model, size: int, device, repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median, IQR, p10 and p90 in milliseconds of forward passes of one ``size`` x ``size`` image."""
    import torch

    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    cuda = device.type == "cuda"
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            if cuda:
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            model(x)
            if cuda:
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000)
    p10, p25, p50, p75, p90 = np.percentile(times, [10, 25, 50, 75, 90])
    return {"median": float(p50), "iqr": float(p75 - p25), "p10": float(p10), "p90": float(p90)}


def _checked(model, size: int, key: str) -> None:
    """One forward pass at ``size``; a model that refuses the size is a UserError, not a traceback."""
    import torch

    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, size, size))
    except (ValueError, RuntimeError, AssertionError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"--size {size}: model {key!r} does not run at this size: {first}") from err


def machine_record(model, device) -> dict:
    """What measures a latency: CPU model, GPU name (None without CUDA), torch version, threads, dtype."""
    import torch

    from engine.runtime import device_name

    return {
        "cpu": device_name(torch.device("cpu")),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "dtype": str(next(model.parameters(), torch.empty(0)).dtype).removeprefix("torch."),
    }


def gflops_at(model, size: int, minimum: int) -> float | None:
    """fvcore GFLOPs at ``size``, or None when the model does not run at that size."""
    from models.complexity import fvcore_gflops

    if size < minimum:
        return None
    try:
        return round(fvcore_gflops(model, size), 4)
    except (ValueError, RuntimeError, AssertionError):
        return None


def measure(
    spec: ModelSpec,
    size: int = 224,
    repeats: int = 20,
    warmup: int = 3,
    fold_bn: bool = False,
    compile: bool = False,
    *,
    train_size: int | None = None,
) -> dict:
    """Parameters, fvcore GFLOPs (at ``size`` and at ``train_size``), latency and the machine that measured it,
    of a freshly built model of ``spec`` (module docstring)."""
    import torch

    from engine.factory import model_from_entry
    from engine.inference import fast_model
    from models.complexity import count_params, fvcore_gflops
    from models.pretrained import architecture_kwargs

    registered = model_info(spec.builder)
    size = registered.fixed_input_size or size
    train_size = registered.fixed_input_size or train_size or size
    torch.manual_seed(0)
    # the counts and the latency do not depend on the weights: no pretrained file is read
    model = model_from_entry(spec.key, spec.builder, architecture_kwargs(spec.model_kwargs)).eval()
    _checked(model, size, spec.key)
    gflops = round(fvcore_gflops(model, size), 4)
    at_train = gflops if train_size == size else gflops_at(model, train_size, registered.min_input_size)
    row = {
        "model": spec.key,
        "builder": spec.builder,
        "params": count_params(model),
        "gflops_fvcore": gflops,
        "input_size": size,
        "gflops_fvcore_train_size": at_train,
        "train_size": train_size,
        "latency_repeats": repeats,
        "latency_warmup": warmup,
        "cpu_threads": torch.get_num_threads(),
        "gpu": None,
    }
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        fast, info = fast_model(model, size, device, fold_bn=fold_bn, compile=compile)
        stats = latency_stats(fast, size, device, repeats, warmup)
        kind = device.type if device.type == "cpu" else "gpu"
        row.update({f"{kind}_latency_ms": round(stats["median"], 3), f"{kind}_latency_iqr_ms": round(stats["iqr"], 3)})
        row.update({f"{kind}_latency_p10_ms": round(stats["p10"], 3), f"{kind}_latency_p90_ms": round(stats["p90"], 3)})
        row["inference"] = {"fold_bn": bool(fold_bn), "bn_folded": info["fold_bn"], "compile": info["compile"]}
        row["machine"] = machine_record(model, device)
        if device.type == "cuda":
            row["gpu"] = torch.cuda.get_device_name(device)
        model = model.cpu()
    for key in ("gpu_latency_ms", "gpu_latency_iqr_ms", "gpu_latency_p10_ms", "gpu_latency_p90_ms"):
        row.setdefault(key, None)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.complexity", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a models: key of params.yaml (or a registered model name)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    # Defaults come from params.yaml's complexity: section, read after parsing so that --help always works.
    parser.add_argument("--size", type=int, help="default: complexity.size")
    parser.add_argument("--repeats", type=int, help="timed forward passes (default: complexity.repeats)")
    parser.add_argument("--warmup", type=int, help="untimed forward passes first (default: complexity.warmup)")
    parser.add_argument("--train-size", type=int, help="also count GFLOPs at this size (default: prepare.size)")
    parser.add_argument("--fold-bn", action="store_true", help="measure with BatchNorm folded (engine.inference)")
    parser.add_argument("--compile", action="store_true", help="measure the torch.compile'd model")
    args = parser.parse_args(argv)
    all_params = load_params()
    all_params.complexity.fill(args)
    if args.repeats < 1:
        parser.error(f"argument --repeats: must be at least 1, got {args.repeats}")
    if args.warmup < 0:
        parser.error(f"argument --warmup: must be 0 or more, got {args.warmup}")
    if args.train_size is not None and args.train_size < 1:
        parser.error(f"argument --train-size: must be at least 1, got {args.train_size}")
    spec = all_params.model_spec(args.model)  # UnknownModelError for a name nobody registered
    minimum = model_info(spec.builder).min_input_size
    if args.size < minimum:
        parser.error(f"argument --size: {spec.builder} needs inputs of at least {minimum} px, got {args.size}")
    train_size = args.train_size or all_params.prepare.size
    row = measure(spec, args.size, args.repeats, args.warmup, args.fold_bn, args.compile, train_size=train_size)
    atomic_write_json(args.out, row)
    gpu = f", GPU {row['gpu_latency_ms']:.2f} ms" if row["gpu_latency_ms"] is not None else ""
    print(
        f"{args.model}: {row['params'] / 1e6:.3f} M params, {row['gflops_fvcore']:.3f} GFLOPs, "
        f"CPU {row['cpu_latency_ms']:.1f} ms (IQR {row['cpu_latency_iqr_ms']:.1f}, {args.repeats} runs){gpu}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
