"""Segment new images of any size with a trained checkpoint.

    python -m pipeline.predict --checkpoint runs/.../best.pt --input DIR --output DIR [--overlay]

Every readable image in ``--input`` (PNG, JPEG, BMP, TIFF) is resized to the training size,
segmented, and its mask (0/255 PNG) written back at the image's original size as ``<stem>.png``;
``--overlay`` also writes ``<stem>_overlay.png`` with the mask drawn over the image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from datasets.fsutil import atomic_write_bytes
from datasets.reader import load_image
from datasets.resize import resize_image
from datasets.torch_data import build_transforms
from pipeline.checkpoint import load_model_from_checkpoint
from pipeline.cli import run
from pipeline.runtime import interactive, resolve_device

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def predict_mask(model: torch.nn.Module, image: np.ndarray, transform, size: int, device) -> np.ndarray:
    """Boolean mask at the image's own size for one RGB uint8 image."""
    h, w = image.shape[:2]
    resized = resize_image(image, size)  # as pipeline.prepare resized the training images
    normalised = transform(image=resized)["image"]  # H x W x 3 float32
    tensor = torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))
    with torch.no_grad():
        logits = model(tensor[None].to(device))[0, 0].float().cpu().numpy()
    # Resize the logits, not the thresholded mask, so that boundaries stay smooth at full size.
    return cv2.resize(logits, (w, h), interpolation=cv2.INTER_LINEAR) > 0.0


def overlay(image: np.ndarray, mask: np.ndarray, colour=(0, 255, 0), alpha: float = 0.45) -> np.ndarray:
    """The image with ``mask`` tinted in ``colour`` and its contour drawn."""
    out = image.copy()
    out[mask] = ((1 - alpha) * out[mask] + alpha * np.array(colour)).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, colour, 1)
    return out


def _write_png(path: Path, array: np.ndarray) -> None:
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".png", array)
    atomic_write_bytes(path, data.tobytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--input", required=True, help="a folder of images")
    parser.add_argument("--output", required=True)
    parser.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.png")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    model, cfg = load_model_from_checkpoint(args.checkpoint, device)
    in_dir, out_dir = Path(args.input), Path(args.output)
    if not in_dir.is_dir():
        raise SystemExit(f"error: --input {in_dir} is not a folder")
    files = sorted(p for p in in_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"error: {in_dir} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    transform = build_transforms(cfg.get("augment", {}), cfg["img_size"], train=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in tqdm(files, desc="predict", disable=not interactive()):
        image = load_image(path)
        mask = predict_mask(model, image, transform, cfg["img_size"], device)
        _write_png(out_dir / f"{path.stem}.png", mask.astype(np.uint8) * 255)
        if args.overlay:
            _write_png(out_dir / f"{path.stem}_overlay.png", overlay(image, mask))
    print(f"wrote {len(files)} masks to {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
