"""Training-loader throughput: samples/s of augmented batches from a prepared folder.

    python -m pipeline.tools.bench_loader --data DIR --batch 16 --workers N --batches 30 [--size S]

The training split of ``--data`` is read through the training data path (``datasets.torch_data``,
default augmentation) at ``--size`` (default: the prepared size); one warm-up batch (worker start-up)
is not timed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from core.cli import run
from datasets.base import DatasetError

# torch and albumentations are imported in `bench`, after the arguments have been checked.


def train_ids_and_size(data: Path) -> tuple[list[str], int]:
    """The training ids and the prepared size of a prepared folder; DatasetError naming what is wrong."""
    if not data.is_dir():
        raise DatasetError(f"--data {data}: no such folder (prepare it with python -m pipeline.prepare)")
    try:
        ids = json.loads((data / "split.json").read_text(encoding="utf-8"))["train"]
        size = int(json.loads((data / "manifest.json").read_text(encoding="utf-8"))["size"])
    except FileNotFoundError as err:
        raise DatasetError(f"{err.filename}: missing; --data must be a folder written by pipeline.prepare") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"{data}: split.json or manifest.json unreadable ({err!r})") from err
    if not ids:
        raise DatasetError(f"{data / 'split.json'}: the training split is empty")
    return list(ids), size


def bench(data: Path, batch: int, workers: int, batches: int, size: int | None = None, seed: int = 42) -> float:
    """Samples per second over `batches` batches, after one warm-up batch (worker start-up excluded)."""
    import torch
    from torch.utils.data import DataLoader

    from datasets.torch_data import SegmentationArrays, build_transforms, seed_worker

    ids, prepared = train_ids_and_size(Path(data))
    if len(ids) < batch:
        raise DatasetError(f"{data}: the training split has {len(ids)} images, fewer than one batch of {batch}")
    ds = SegmentationArrays(data, ids, build_transforms({}, size or prepared, train=True, seed=seed))
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
    ap = argparse.ArgumentParser(prog="python -m pipeline.tools.bench_loader", description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path, help="prepared folder (pipeline.prepare output)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--batches", type=int, default=30, help="timed batches (after one warm-up batch)")
    ap.add_argument("--size", type=int, default=None, help="training size (default: the prepared size)")
    ap.add_argument("--json", help="also write the figure here, with the machine (docs/benchmarks/)")
    a = ap.parse_args(argv)
    for name, value, low in (("batch", a.batch, 1), ("workers", a.workers, 0), ("batches", a.batches, 1)):
        if value < low:
            ap.error(f"argument --{name}: must be at least {low}, got {value}")
    if a.size is not None and a.size < 1:
        ap.error(f"argument --size: must be positive, got {a.size}")
    train_ids_and_size(a.data)  # a wrong folder is reported before torch is imported
    rate = bench(a.data, a.batch, a.workers, a.batches, a.size)
    print(f"{rate:.1f} samples/s (batch {a.batch}, workers {a.workers}, {a.batches} batches)")
    if a.json:
        from pipeline.tools.results import header, write

        row = {"data": str(a.data), "batch": a.batch, "workers": a.workers, "batches": a.batches, "samples/s": rate}
        write(a.json, {**header("Training loader with augmentation", ap.prog, argv), "rows": [row]})
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
