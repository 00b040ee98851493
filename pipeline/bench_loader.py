"""Training-loader throughput: samples/s of augmented batches from a prepared folder.

python -m pipeline.bench_loader --data DIR --batch 16 --workers N --batches 30
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from datasets.torch_data import SegmentationArrays, build_transforms, seed_worker
from pipeline.cli import run


def bench(data: Path, batch: int, workers: int, batches: int, size: int | None = None, seed: int = 42) -> float:
    """Samples per second over `batches` batches, after one warm-up batch (worker start-up excluded)."""
    ids = json.loads((data / "split.json").read_text())["train"]
    if size is None:
        size = int(json.loads((data / "manifest.json").read_text())["size"])
    ds = SegmentationArrays(data, ids, build_transforms({}, size, train=True, seed=seed))
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        ds,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        worker_init_fn=seed_worker,
        generator=g,
        persistent_workers=workers > 0,
    )
    seen, it, start = 0, None, 0.0
    while seen < batches:
        it = iter(loader) if it is None else it
        try:
            images, _ = next(it)
        except StopIteration:
            it = None
            continue
        if start == 0.0:  # warm-up batch
            start = time.perf_counter()
            continue
        seen += 1
    return seen * batch / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.bench_loader", description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path, help="prepared folder (pipeline.prepare output)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--batches", type=int, default=30, help="timed batches (after one warm-up batch)")
    ap.add_argument("--size", type=int, default=None, help="training size (default: the prepared size)")
    a = ap.parse_args(argv)
    rate = bench(a.data, a.batch, a.workers, a.batches, a.size)
    print(f"{rate:.1f} samples/s (batch {a.batch}, workers {a.workers}, {a.batches} batches)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
