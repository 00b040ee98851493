"""Evaluate a checkpoint on a split of a prepared dataset with the paper's per-image metrics.

    python -m pipeline.evaluate --data data/prepared/synthetic --checkpoint runs/.../best.pt --out DIR

Writes ``per_image.csv`` (id, dice, iou, precision, recall, specificity, accuracy, hd95),
``metrics.json`` (per metric: mean, std, 95% bootstrap CI over images; the six paper metrics in
percent, HD95 in pixels), ``timing.json`` (throughput) and ``pred/<id>.png`` (predicted masks, 0/255).
See ``pipeline.metrics`` for the definitions and the rules for empty masks.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from datasets.fsutil import atomic_write_bytes, atomic_write_json
from datasets.torch_data import SegmentationArrays, build_transforms
from pipeline.checkpoint import load_model_from_checkpoint
from pipeline.cli import run
from pipeline.metrics import ALL_METRICS, PAPER_METRICS, binarize_logits, image_metrics, summarize
from pipeline.params import load_params
from pipeline.runtime import interactive, resolve_device


def evaluate(
    data: str,
    checkpoint: str,
    out: str,
    split: str = "test",
    batch_size: int = 16,
    device_name: str = "auto",
    n_boot: int = 1000,
    save_predictions: bool = True,
) -> dict:
    """Run the evaluation and write its outputs; returns the metrics summary."""
    device = resolve_device(device_name)
    model, cfg = load_model_from_checkpoint(checkpoint, device)
    splits = json.loads((Path(data) / "split.json").read_text())
    if split not in splits:
        raise SystemExit(f"error: {data}/split.json has no split {split!r} (has {sorted(splits)})")
    ids = splits[split]
    if not ids:
        raise SystemExit(f"error: {data}/split.json: split {split!r} is empty")
    dataset = SegmentationArrays(data, ids, build_transforms(cfg.get("augment", {}), cfg["img_size"], train=False))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)

    out_dir = Path(out)
    pred_dir = out_dir / "pred"
    pred_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list] = {m: [] for m in ALL_METRICS}
    seconds, done = 0.0, 0
    with torch.no_grad():
        for images, masks in tqdm(loader, desc=f"evaluate {split}", disable=not interactive()):
            t0 = time.perf_counter()
            logits = model(images.to(device))
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds += time.perf_counter() - t0
            preds = binarize_logits(logits.cpu())
            batch = image_metrics(preds, masks)
            for name in ALL_METRICS:
                rows[name].extend(batch[name].tolist())
            if save_predictions:
                pngs = preds.squeeze(1).numpy().astype(np.uint8) * 255
                for image_id, pred in zip(ids[done : done + len(pngs)], pngs, strict=True):
                    _, png = cv2.imencode(".png", pred)
                    atomic_write_bytes(pred_dir / f"{image_id}.png", png.tobytes())
            done += len(images)

    table = pd.DataFrame({"id": ids, **rows})
    atomic_write_bytes(out_dir / "per_image.csv", table.to_csv(index=False, float_format="%.6f").encode())
    summary = {
        name: summarize(table[name].to_numpy(), n_boot=n_boot, scale=100.0 if name in PAPER_METRICS else 1.0)
        for name in ALL_METRICS
    }
    summary["units"] = {"percent": list(PAPER_METRICS), "pixels": ["hd95"]}
    summary["split"], summary["model"], summary["n_images"] = split, cfg["model"], len(ids)
    atomic_write_json(out_dir / "metrics.json", summary)
    timing = {
        "images": len(ids),
        "model_seconds": round(seconds, 4),
        "images_per_second": round(len(ids) / seconds, 2) if seconds else None,
        "device": str(device),
    }
    atomic_write_json(out_dir / "timing.json", timing)
    print(
        f"{cfg['model']} on {split} ({len(ids)} images): "
        + ", ".join(f"{m} {summary[m]['mean']:.2f}" for m in ALL_METRICS)
        + f"; {timing['images_per_second']} images/s",
        flush=True,
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    params = load_params().evaluate.model_dump()
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--split", default=params.get("split", "test"))
    parser.add_argument("--batch-size", type=int, default=params.get("batch_size", 16))
    parser.add_argument("--bootstrap", type=int, default=params.get("bootstrap", 1000), help="bootstrap resamples")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-predictions", action="store_true", help="do not write pred/*.png")
    args = parser.parse_args(argv)
    evaluate(
        args.data,
        args.checkpoint,
        args.out,
        args.split,
        args.batch_size,
        args.device,
        args.bootstrap,
        save_predictions=not args.no_predictions,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
