"""Segment new images of any size with a trained checkpoint.

    python -m pipeline.predict --checkpoint runs/.../best.pt --input DIR --output DIR [--overlay] [--compile]

Every file of ``--input`` (not its subfolders) whose suffix the reader decodes (``datasets.base.IMAGE_EXTS``:
png, jpg, jpeg, bmp, tif, tiff, gif, webp; case-insensitive) is resized to the checkpoint's training
size as ``pipeline.prepare`` resizes, segmented, and its mask (0/255 PNG, the logits resized back, then
thresholded) written at the image's own size; ``--overlay`` also writes the mask drawn over the image, in
the colour ``reports.overlays`` sets for a prediction without ground truth (magenta; none of the colours of
the report's qualitative figure, where green means under-segmented).

Names: the mask of ``x.jpg`` is ``x.png``. When several inputs share a stem (``x.png`` and ``x.jpg``;
compared case-insensitively), each is named ``<stem>_<ext>.png`` instead (``x_png.png``, ``x_jpg.png``),
so no two inputs ever write one file; overlays are ``<mask stem>_overlay.png``. Inputs whose output
names would still coincide (``a.png`` with ``--overlay`` beside an input ``a_overlay.jpg``) are refused
before anything is written, naming both.

Nothing of the user's is overwritten: ``--output`` must not be, contain or lie inside ``--input``, and
must be new, empty, or an earlier output of this command (it holds ``predictions.json``, the list of
the files this command wrote there; a file of another origin in the way is refused, naming it).

An input that cannot be decoded is skipped with one ``warning: <file>: ...`` line; the others are
segmented, and the command then ends with ``error: N of M images could not be read ...`` and exit
status 2 (a mask left from an earlier run for a skipped input is removed, so no stale mask remains).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.cli import run
from core.errors import UserError
from datasets.base import IMAGE_EXTS, DatasetError, image_files, listing

if TYPE_CHECKING:
    import numpy as np
    import torch

MANIFEST = "predictions.json"
# torch, OpenCV and the models are imported in `predict`, after every check of the arguments.


def plan_outputs(files: list[Path], overlay: bool) -> dict[Path, tuple[str, str | None]]:
    """input file -> (mask file name, overlay file name or None); UserError when two would coincide."""
    by_stem: dict[str, list[Path]] = {}
    for f in files:
        by_stem.setdefault(f.stem.casefold(), []).append(f)
    plan: dict[Path, tuple[str, str | None]] = {}
    for f in files:
        base = f.stem if len(by_stem[f.stem.casefold()]) == 1 else f"{f.stem}_{f.suffix[1:].lower()}"
        plan[f] = (f"{base}.png", f"{base}_overlay.png" if overlay else None)
    writers: dict[str, tuple[str, list[Path]]] = {}
    for f, names in plan.items():
        for name in names:
            if name is not None:
                writers.setdefault(name.casefold(), (name, []))[1].append(f)
    clashes = [(name, fs) for name, fs in writers.values() if len(fs) > 1]
    if clashes:
        name, fs = clashes[0]
        raise UserError(
            f"--input: {' and '.join(p.name for p in fs)} would both be written to {name} in --output; "
            "rename one of them" + (f" ({len(clashes) - 1} more such clash(es))" if len(clashes) > 1 else "")
        )
    return plan


def _read_manifest(out_dir: Path) -> dict | None:
    try:
        doc = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("files"), dict) else None


def check_output(in_dir: Path, out_dir: Path, targets: list[str]) -> dict[str, str]:
    """Refuse an --output that overlaps --input or holds files of another origin; returns the earlier listing."""
    a, b = in_dir.resolve(), out_dir.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise UserError(
            f"--output {out_dir} and --input {in_dir} overlap; writing masks there could overwrite your images. "
            "Choose an output folder outside the input folder"
        )
    if not out_dir.exists():
        return {}
    if not out_dir.is_dir():
        raise UserError(f"--output {out_dir}: exists and is not a folder")
    entries = {p.name.casefold() for p in out_dir.iterdir()}
    if not entries:
        return {}
    manifest = _read_manifest(out_dir)
    if manifest is None:
        raise UserError(
            f"--output {out_dir}: not empty and not an earlier output of pipeline.predict (no {MANIFEST}); "
            "choose a new or empty folder"
        )
    owned = {str(k): str(v) for k, v in manifest["files"].items()}
    owned_cf = {k.casefold() for k in owned}
    foreign = sorted(t for t in targets if t.casefold() in entries and t.casefold() not in owned_cf)
    if foreign:
        raise UserError(
            f"--output {out_dir}: would overwrite {listing(foreign)}, which pipeline.predict did not write; "
            "move them or choose another folder"
        )
    return owned


def predict_mask(model: torch.nn.Module, image: np.ndarray, transform, size: int, device) -> np.ndarray:
    """Boolean mask at the image's own size for one RGB uint8 image."""
    import cv2
    import numpy as np
    import torch

    from datasets.resize import resize_image

    h, w = image.shape[:2]
    resized = resize_image(image, size)  # as pipeline.prepare resized the training images
    normalised = transform(image=resized)["image"]  # H x W x 3 float32
    tensor = torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))
    with torch.inference_mode():
        logits = model(tensor[None].to(device))[0, 0].float().cpu().numpy()
    # Resize the logits, not the thresholded mask, so that boundaries stay smooth at full size.
    return cv2.resize(logits, (w, h), interpolation=cv2.INTER_LINEAR) > 0.0


def overlay(image: np.ndarray, mask: np.ndarray, colour=None, alpha: float = 0.45) -> np.ndarray:
    """The image with ``mask`` tinted in ``colour`` and its contour drawn; by default the colour the report's
    figures give a prediction without ground truth (``reports.overlays``), none of qualitative.png's colours."""
    import cv2
    import numpy as np

    from reports.overlays import OVERLAYS

    colour = OVERLAYS["default"]["pred"] if colour is None else colour
    out = image.copy()
    out[mask] = ((1 - alpha) * out[mask] + alpha * np.array(colour)).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, colour, 1)
    return out


def _write_png(path: Path, array: np.ndarray) -> None:
    import cv2

    from core.fsutil import atomic_write_bytes

    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".png", array)
    atomic_write_bytes(path, data.tobytes())


def predict(
    checkpoint: str | Path,
    input_dir: str | Path,
    output_dir: str | Path,
    with_overlay: bool = False,
    device_name: str = "auto",
    compile: bool = False,
) -> dict[str, str]:
    """Segment every image of ``input_dir`` into ``output_dir`` (module docstring); returns output -> input.

    Raises UserError for bad arguments before any file is written, and at the end when some inputs
    could not be decoded (after the others were segmented).
    """
    in_dir, out_dir = Path(input_dir), Path(output_dir)
    if not in_dir.is_dir():
        raise UserError(f"--input {in_dir}: no such folder")
    files = image_files(in_dir)
    if not files:
        raise UserError(f"--input {in_dir}: holds no images ({', '.join(sorted(IMAGE_EXTS))})")
    plan = plan_outputs(files, with_overlay)
    targets = [name for names in plan.values() for name in names if name is not None]
    owned = check_output(in_dir, out_dir, targets)

    import numpy as np
    from tqdm import tqdm

    from core.fsutil import atomic_write_json
    from datasets.reader import load_image
    from datasets.torch_data import build_transforms
    from engine.factory import device_for, model_from_checkpoint
    from engine.inference import fast_model
    from engine.runtime import interactive

    device = device_for(device_name)
    model, cfg = model_from_checkpoint(checkpoint, device)
    size = int(cfg["img_size"])
    model, _ = fast_model(model, size, device, compile=compile)
    transform = build_transforms(cfg.get("augment", {}), size, train=False)

    written = dict(owned)
    for f, names in plan.items():
        written.update({name: f.name for name in names if name is not None})
    record = {"checkpoint": str(checkpoint), "img_size": size, "input": str(in_dir), "files": written}
    atomic_write_json(out_dir / MANIFEST, record)  # claimed before writing, so a rerun may replace them

    failed: list[Path] = []
    for path in tqdm(files, desc="predict", disable=not interactive()):
        mask_name, overlay_name = plan[path]
        try:
            image = load_image(path)
        except DatasetError as err:
            print(f"warning: {err}", file=sys.stderr, flush=True)
            failed.append(path)
            for name in (mask_name, overlay_name):
                if name is not None:
                    (out_dir / name).unlink(missing_ok=True)  # ours (checked above): no stale mask stays
            continue
        mask = predict_mask(model, image, transform, size, device)
        _write_png(out_dir / mask_name, mask.astype(np.uint8) * 255)
        if overlay_name is not None:
            _write_png(out_dir / overlay_name, overlay(image, mask))
    n_ok = len(files) - len(failed)
    print(f"wrote {n_ok} masks to {out_dir} (model at {size} px)", file=sys.stderr, flush=True)
    if failed:
        atomic_write_json(out_dir / MANIFEST, {**record, "unreadable": [p.name for p in failed]})
        raise UserError(
            f"{len(failed)} of {len(files)} images could not be read and have no mask: "
            f"{listing(p.name for p in failed)} (see the warnings above)"
        )
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--input", required=True, type=Path, help="a folder of images")
    parser.add_argument("--output", required=True, type=Path, help="a new or empty folder, or an earlier --output")
    parser.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.png")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (worth it for many images)")
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        raise UserError(f"--checkpoint {args.checkpoint}: no such file")
    predict(args.checkpoint, args.input, args.output, args.overlay, args.device, args.compile)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
