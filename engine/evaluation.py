"""Evaluate a checkpoint on a split of a prepared dataset: per-image metrics, their summary, timing, predictions.

The function behind ``python -m pipeline.evaluate`` (the model's own test split) and ``python -m
pipeline.transfer`` (another dataset's test split); ``pipeline/evaluate.py`` describes the outputs and the
rule for sizes.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from datasets.base import DatasetError

# torch, pandas, OpenCV and the models are imported inside the functions below, not here: a wrong argument is
# then reported before the seconds those imports take.


def split_ids(data: Path, split: str) -> list[str]:
    """The ids of ``split`` in a prepared folder; DatasetError naming the file when it is not there."""
    if not data.is_dir():
        raise DatasetError(f"--data {data}: no such folder (prepare it with python -m pipeline.prepare)")
    path = data / "split.json"
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; --data must be a folder written by python -m pipeline.prepare") from None
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: unreadable: {err}") from err
    if not isinstance(splits, dict) or split not in splits:
        have = sorted(splits) if isinstance(splits, dict) else []
        raise DatasetError(f"{path}: has no split {split!r} (has {', '.join(have) or 'none'})")
    if not splits[split]:
        raise DatasetError(f"{path}: split {split!r} is empty")
    return list(splits[split])


def prepared_size(data: Path) -> int:
    """The side of the prepared images (from images.npy's header)."""
    import numpy as np

    try:
        images = np.load(data / "images.npy", mmap_mode="r")
    except (OSError, ValueError) as err:
        raise DatasetError(f"{data / 'images.npy'}: unreadable prepared images: {err}") from err
    if images.ndim != 4 or images.shape[1] != images.shape[2]:
        raise DatasetError(f"{data / 'images.npy'}: expected N x S x S x 3 images, got shape {images.shape}")
    return int(images.shape[1])


@dataclass(frozen=True)
class _Loaded:
    """What the scoring loop needs: the split's ids, the model on its device and the data loader."""

    ids: list[str]
    size: int  # the prepared side, at which the metrics are computed
    img_size: int  # the side the model was trained at and runs at
    device: Any
    model: Any
    cfg: dict
    path_info: dict
    loader: Any


def evaluate(
    data: str | Path,
    checkpoint: str | Path,
    out: str | Path,
    split: str = "test",
    *,
    batch_size: int = 16,
    device_name: str = "auto",
    n_boot: int = 1000,
    save_predictions: bool = True,
    compile: bool = False,
    fold_bn: bool = True,
    extra: dict | None = None,
) -> dict:
    """Run the evaluation and write its outputs; returns the metrics summary (as written to metrics.json, with
    the entries of ``extra`` added, e.g. the source and target of a transfer)."""
    data, out_dir = Path(data), Path(out)
    loaded = _load(data, checkpoint, split, device_name, batch_size=batch_size, compile=compile, fold_bn=fold_bn)
    pred_dir = out_dir / "pred" if save_predictions else None
    rows, seconds = _score(loaded, split, batch_size=batch_size, compile=compile, pred_dir=pred_dir)
    summary = _write_metrics(loaded, rows, out_dir, split=split, n_boot=n_boot, extra=extra)
    timing = _write_timing(loaded, seconds, out_dir, batch_size=batch_size)
    _print_summary(loaded, split, list(rows), summary, timing)
    return summary


def _load(
    data: Path, checkpoint: str | Path, split: str, device_name: str, *, batch_size: int, compile: bool, fold_bn: bool
) -> _Loaded:
    """Read the split and the checkpoint, put the model on its inference path and build the loader."""
    from torch.utils.data import DataLoader

    from datasets.torch_data import SegmentationArrays, build_transforms
    from engine.factory import device_for, model_from_checkpoint
    from engine.inference import fast_model

    ids = split_ids(data, split)
    size = prepared_size(data)
    device = device_for(device_name)
    model, cfg = model_from_checkpoint(checkpoint, device)
    img_size = int(cfg["img_size"])
    if img_size != size:
        print(
            f"note: {checkpoint} was trained at {img_size} px and {data} is prepared at {size} px: the model runs "
            f"at {img_size} px and its logits are resized to {size} px before scoring (HD95 in {size}-px pixels)",
            file=sys.stderr,
            flush=True,
        )
    model, path_info = fast_model(model, img_size, device, fold_bn=fold_bn, compile=compile, batch=batch_size)
    # Normalisation only: build_transforms' resize to the prepared size is a no-op.
    dataset = SegmentationArrays(data, ids, build_transforms(cfg.get("augment", {}), size, train=False))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    return _Loaded(ids, size, img_size, device, model, cfg, path_info, loader)


def _score(
    loaded: _Loaded, split: str, *, batch_size: int, compile: bool, pred_dir: Path | None
) -> tuple[dict[str, list[float]], float]:
    """Predict every batch, score it per image and save the masks as PNGs; returns the metrics and the model's
    seconds."""
    import cv2
    import numpy as np
    import torch
    import torch.nn.functional as F

    from core.fsutil import atomic_write_bytes
    from engine.metrics import binarize_logits, image_metrics
    from engine.runtime import interactive

    ids, size, img_size, device = loaded.ids, loaded.size, loaded.img_size, loaded.device
    if pred_dir is not None:
        pred_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[float]] = {}
    seconds, done = 0.0, 0
    with torch.inference_mode():
        for images, masks in tqdm(loaded.loader, desc=f"evaluate {split}", disable=not interactive()):
            n = len(images)
            x = images.to(device)
            if img_size != size:
                x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False)
            if compile and n < batch_size:  # keep the one shape the model was compiled for
                x = torch.cat([x, x.new_zeros(batch_size - n, *x.shape[1:])])
            t0 = time.perf_counter()
            logits = loaded.model(x)[:n]
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds += time.perf_counter() - t0
            logits = logits.float()
            if img_size != size:
                logits = F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)
            preds = binarize_logits(logits.cpu())
            for name, values in image_metrics(preds, masks).items():
                rows.setdefault(name, []).extend(np.asarray(values, dtype=np.float64).tolist())
            if pred_dir is not None:
                pngs = preds.squeeze(1).numpy().astype(np.uint8) * 255
                for image_id, pred in zip(ids[done : done + n], pngs, strict=True):
                    _, png = cv2.imencode(".png", pred)
                    atomic_write_bytes(pred_dir / f"{image_id}.png", png.tobytes())
            done += n
    return rows, seconds


def _write_metrics(
    loaded: _Loaded, rows: dict[str, list[float]], out_dir: Path, *, split: str, n_boot: int, extra: dict | None
) -> dict:
    """Write per_image.csv and metrics.json (the summary with its bootstrap intervals); returns the summary."""
    import numpy as np
    import pandas as pd

    from core.fsutil import atomic_write_bytes, atomic_write_json
    from engine.metric_names import METRIC_UNITS, REPORT_SCALE
    from engine.stats import summarize

    # one unit per metric in every file: per_image.csv holds what the reports print (percent, HD95 in px)
    scaled = {name: np.asarray(values) * REPORT_SCALE.get(name, 1.0) for name, values in rows.items()}
    table = pd.DataFrame({"id": loaded.ids, **scaled})
    atomic_write_bytes(out_dir / "per_image.csv", table.to_csv(index=False, float_format="%.6f").encode())
    summary: dict = {name: summarize(table[name].to_numpy(), n_boot=n_boot) for name in rows}
    summary["units"] = {name: METRIC_UNITS.get(name, "") for name in rows}
    summary["per_image_units"] = "as units"  # per_image.csv in the units above (earlier files held fractions)
    summary.update(
        split=split,
        model=loaded.cfg["model"],
        n_images=len(loaded.ids),
        img_size=loaded.img_size,
        prepared_size=loaded.size,
    )
    summary.update(extra or {})
    atomic_write_json(out_dir / "metrics.json", summary)
    return summary


def _write_timing(loaded: _Loaded, seconds: float, out_dir: Path, *, batch_size: int) -> dict:
    """Write timing.json (the model's own seconds, without loading and scoring); returns it."""
    from core.fsutil import atomic_write_json

    n = len(loaded.ids)
    timing = {
        "images": n,
        "model_seconds": round(seconds, 4),
        "images_per_second": round(n / seconds, 2) if seconds else None,
        "device": str(loaded.device),
        "batch_size": batch_size,
        "bn_folded": loaded.path_info["fold_bn"],
        "compiled": loaded.path_info["compile"],
    }
    atomic_write_json(out_dir / "timing.json", timing)
    return timing


def _print_summary(loaded: _Loaded, split: str, names: list[str], summary: dict, timing: dict) -> None:
    """One line on stdout: the model, the split, the mean of each reported metric and the throughput."""
    from engine.metric_names import REPORT_SCALE

    shown = [m for m in names if m in REPORT_SCALE]
    print(
        f"{loaded.cfg['model']} on {split} ({len(loaded.ids)} images, model at {loaded.img_size} px, scored at "
        f"{loaded.size} px): "
        + ", ".join(f"{m} {summary[m]['mean']:.2f}" for m in shown)
        + f"; {timing['images_per_second']} images/s",
        flush=True,
    )


def parse_evaluation_args(parser, argv, split_help: str = "the split to score"):
    """Add the options every evaluation command shares (defaults from params.yaml's ``evaluate:`` section, read
    after parsing so that ``--help`` always works), parse ``argv`` and check them."""
    import argparse

    from engine.params import load_params

    parser.add_argument("--split", choices=("train", "val", "test"), help=f"{split_help} (default: evaluate.split)")
    parser.add_argument("--batch-size", type=int, help="default: evaluate.batch_size")
    parser.add_argument("--bootstrap", type=int, help="bootstrap resamples (default: evaluate.bootstrap)")
    parser.add_argument("--device", help="auto, cpu or cuda (default: evaluate.device)")
    parser.add_argument(
        "--compile", action=argparse.BooleanOptionalAction, help="torch.compile the model (default: evaluate.compile)"
    )
    parser.add_argument("--no-predictions", action="store_true", help="do not write pred/*.png")
    args = parser.parse_args(argv)
    load_params().evaluate.fill(args)
    if args.batch_size < 1:
        parser.error(f"argument --batch-size: must be at least 1, got {args.batch_size}")
    if args.bootstrap < 0:
        parser.error(f"argument --bootstrap: must be 0 or more, got {args.bootstrap}")
    return args
