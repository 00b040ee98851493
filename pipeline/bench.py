"""Training and inference throughput and peak memory of registered models: how speed is tracked.

    python -m pipeline.bench --models dyglnet unet --size 224 --batch 4 [--device cpu|cuda] [--json FILE]

Each model runs ``--warmup`` untimed steps, then ``--steps`` timed training steps (forward, the
training loss, backward, AdamW step) and timed inference batches. Memory: peak CUDA allocation on a
GPU; on the CPU the growth of the process's peak resident set (ru_maxrss) during the model's run,
which is an upper bound only for the first model measured in a process.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time

import torch

from datasets.fsutil import atomic_write_json
from models import create_model, model_info
from models.complexity import count_params
from pipeline.cli import run
from pipeline.recipe import BceDiceLoss
from pipeline.runtime import resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_model(name: str, size: int, batch: int, device: torch.device, steps: int, warmup: int) -> dict:
    """Measure one model; returns a row of the results table."""
    info = model_info(name)
    size = info.fixed_input_size or size
    torch.manual_seed(0)
    model = create_model(name).to(device)
    criterion = BceDiceLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=3e-5)
    x = torch.randn(batch, 3, size, size, device=device)
    y = (torch.rand(batch, 1, size, size, device=device) > 0.5).float()
    use_amp = device.type == "cuda"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = _rss_mb()

    def train_step():
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    for _ in range(warmup):
        train_step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step()
    _sync(device)
    train_ips = steps * batch / (time.perf_counter() - t0)

    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
        for _ in range(warmup):
            model(x)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            model(x)
        _sync(device)
    infer_ips = steps * batch / (time.perf_counter() - t0)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_mb = max(0.0, _rss_mb() - rss_before)
    return {
        "model": name,
        "params": count_params(model),
        "size": size,
        "batch": batch,
        "device": str(device),
        "train_images_per_s": round(train_ips, 3),
        "infer_images_per_s": round(infer_ips, 3),
        "peak_memory_mb": round(peak_mb, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["dyglnet"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", default="bench.json", help="where to write the results (default bench.json)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    rows = []
    print(f"{'model':<24} {'size':>5} {'batch':>5} {'train img/s':>12} {'infer img/s':>12} {'peak MB':>9}")
    for name in args.models:
        row = bench_model(name, args.size, args.batch, device, args.steps, args.warmup)
        rows.append(row)
        print(
            f"{name:<24} {row['size']:>5} {row['batch']:>5} {row['train_images_per_s']:>12.2f} "
            f"{row['infer_images_per_s']:>12.2f} {row['peak_memory_mb']:>9.1f}",
            flush=True,
        )
    env = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }
    atomic_write_json(args.json, {"environment": env, "results": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
