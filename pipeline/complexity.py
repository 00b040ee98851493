"""Complexity of one registered model: parameters, fvcore GFLOPs and measured latency.

    python -m pipeline.complexity --model dyglnet --out results/complexity/dyglnet.json

Latency is the median wall time of ``--repeats`` forward passes of one 3 x 224 x 224 image in eval
mode after warm-up, on the CPU (this process's threads) and on the GPU when one is present.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from datasets.fsutil import atomic_write_json
from models import create_model, model_info
from models.complexity import count_params, fvcore_gflops
from pipeline.cli import run
from pipeline.params import load_params


def latency_ms(model: torch.nn.Module, size: int, device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median forward latency in milliseconds of a batch of one ``size`` x ``size`` image."""
    model = model.to(device).eval()
    x = torch.randn(1, 3, size, size, device=device)
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def measure(name: str, size: int = 224, repeats: int = 5, model_kwargs: dict | None = None) -> dict:
    """Parameters, fvcore GFLOPs and latency of a freshly built model (random weights)."""
    info = model_info(name)
    size = info.fixed_input_size or size
    torch.manual_seed(0)
    model = create_model(name, **(model_kwargs or {}))
    row = {
        "model": name,
        "display_name": info.display_name,
        "family": info.family,
        "params": count_params(model),
        "gflops_fvcore": round(fvcore_gflops(model, size), 4),
        "input_size": size,
        "cpu_latency_ms": round(latency_ms(model, size, torch.device("cpu"), repeats), 2),
        "cpu_threads": torch.get_num_threads(),
        "gpu_latency_ms": None,
        "gpu": None,
    }
    if torch.cuda.is_available():
        row["gpu_latency_ms"] = round(latency_ms(model, size, torch.device("cuda"), max(repeats, 20)), 3)
        row["gpu"] = torch.cuda.get_device_name()
    return row


def main(argv: list[str] | None = None) -> int:
    all_params = load_params()
    params = all_params.complexity.model_dump()
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.complexity", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--size", type=int, default=params.get("size", 224))
    parser.add_argument("--repeats", type=int, default=params.get("repeats", 5))
    args = parser.parse_args(argv)
    # The builder arguments the model is trained with (params.yaml models.<name>.model_kwargs).
    spec = all_params.model_spec(args.model)
    row = measure(spec.builder, args.size, args.repeats, spec.model_kwargs)
    row["model"] = spec.key
    atomic_write_json(args.out, row)
    print(
        f"{args.model}: {row['params'] / 1e6:.3f} M params, {row['gflops_fvcore']:.3f} GFLOPs, "
        f"CPU {row['cpu_latency_ms']:.1f} ms",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
