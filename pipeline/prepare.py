"""Prepare a dataset: validate every pair, resize, binarise, split, and write arrays plus metadata.

    python -m pipeline.prepare --dataset NAME --raw DIR --out DIR [--size 224] [--seed 42]
                               [--split-by-patient] [--params params.yaml]

Defaults for --size, --seed and --split-by-patient come from the `prepare:` section of params.yaml
(keys size, seed, split_by_patient) when that file exists; flags override them.

Output (`--out`, written to a temporary folder next to it and renamed at the end, so an existing
`--out` is replaced only on success):
- images.npy  N x S x S x 3 uint8 RGB; masks.npy  N x S x S uint8 in {0, 1}; row i is ids.json[i]
- ids.json    the ids in row order (sorted)
- split.json  {"train": [...], "val": [...], "test": [...]} (sorted id lists)
- groups.json id -> patient/slide, for datasets that have groups (brain_mri, tnbc)
- manifest.json  dataset, size, seed, rules, counts, empty masks, sha256 of every source file read.

Resizing: images with cv2.INTER_AREA when neither side grows, bilinear otherwise; masks are
binarised at source resolution (rules in `datasets.reader`) and resized with nearest neighbour
(cv2.INTER_NEAREST_EXACT, pixel-centre aligned). The aspect ratio is not kept (the paper resizes
every image to 224 x 224).

Errors in the input (`datasets.DatasetError`) print `error: ...` to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from datasets.base import Adapter, DatasetError, DatasetWarning, Pair, listing
from datasets.fsutil import atomic_dir
from datasets.reader import as_rgb, binarize, decode, read_bytes
from datasets.registry import ADAPTERS, get_adapter
from datasets.resize import resize_image, resize_mask
from datasets.splits import grouped_split, official_split, random_split
from pipeline.cli import run

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = {"size": 224, "seed": 42, "split_by_patient": False}
MANIFEST_FORMAT = 1
IMAGE_RULE = (
    "RGB uint8; grayscale replicated, palette expanded, alpha dropped; >8-bit integer data "
    "scaled by 255/max when max > 255; resized with INTER_AREA (shrinking) or bilinear"
)
MASK_RULES = {
    "binary": "0..255 values (colour: max over channels), foreground where value >= 128; nearest resize",
    "label": "instance labels, foreground where label > 0; nearest resize",
    "auto": "0/1 integer masks: foreground where 1; otherwise 0..255 rule (>= 128); nearest resize",
}


@dataclass
class _Item:
    pair: Pair
    image: np.ndarray | None
    mask: np.ndarray | None
    sha_image: str
    sha_mask: str


def _load(pair: Pair, adapter: Adapter, size: int) -> _Item:
    """Read, hash and decode both files once; resize if the pair is kept."""
    img_bytes, sha_img = read_bytes(pair.image)
    mask_bytes, sha_mask = read_bytes(pair.mask)
    img = as_rgb(decode(img_bytes, pair.image))
    mask = binarize(decode(mask_bytes, pair.mask, labels=adapter.mask_kind == "label"), adapter.mask_kind)
    if img.shape[:2] != mask.shape:
        raise DatasetError(
            f"size mismatch: image {pair.image} is {img.shape[1]}x{img.shape[0]}, "
            f"mask {pair.mask} is {mask.shape[1]}x{mask.shape[0]} (width x height)"
        )
    if not adapter.keep(mask):
        return _Item(pair, None, None, sha_img, sha_mask)
    return _Item(pair, resize_image(img, size), resize_mask(mask, size), sha_img, sha_mask)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _make_split(adapter: Adapter, kept: list[Pair], seed: int, by_patient: bool) -> tuple[dict, str]:
    ids = [p.id for p in kept]
    if by_patient:
        if adapter.split == "official":
            raise DatasetError(f"--split-by-patient does not apply to {adapter.name}: it has an official split")
        if any(p.group is None for p in kept):
            raise DatasetError(f"--split-by-patient: dataset {adapter.name} has no patient/group ids")
        rule = f"grouped {adapter.split} by patient, seed {seed}"
        return grouped_split({p.id: p.group for p in kept}, seed, adapter.split), rule
    if adapter.split == "official":
        return official_split({p.id: p.subset for p in kept}), "official"
    return random_split(ids, seed, adapter.split), f"random {adapter.split}, seed {seed}"


def _dump(obj: object, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def prepare(
    dataset: str,
    raw: str | Path,
    out: str | Path,
    size: int = 224,
    seed: int = 42,
    split_by_patient: bool = False,
    progress: bool = False,
    workers: int | None = None,
) -> dict:
    """Prepare `dataset` from `raw` into `out`; returns the manifest. Raises DatasetError on bad input."""
    adapter = get_adapter(dataset)
    raw, out = Path(raw), Path(out)
    if size < 1:
        raise DatasetError(f"--size must be positive, got {size}")
    raw_abs, out_abs = raw.resolve(), out.resolve()
    if raw_abs == out_abs or out_abs in raw_abs.parents or raw_abs in out_abs.parents:
        raise DatasetError(f"--out {out} and --raw {raw} overlap; replacing --out could delete the source data")
    try:
        if not raw.is_dir():
            raise DatasetError(f"--raw {raw}: no such directory")
        pairs = adapter.pairs(raw)
        workers = workers or min(4, os.cpu_count() or 1)
        items: list[_Item] = []
        pool = ThreadPoolExecutor(workers)
        try:
            results = pool.map(lambda p: _load(p, adapter, size), pairs)
            for item in tqdm(
                results, total=len(pairs), desc=f"prepare {dataset}", unit="pair", disable=not progress, file=sys.stderr
            ):
                items.append(item)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    except DatasetError as e:
        raise DatasetError(f"{e}\nexpected layout for --dataset {dataset}:\n{adapter.layout}") from e

    kept = [it for it in items if it.image is not None]
    if not kept:
        raise DatasetError(f"{raw}: no pair is left after applying the rule: {adapter.drop_rule}")
    split, split_rule = _make_split(adapter, [it.pair for it in kept], seed, split_by_patient)
    empty = [it.pair.id for it in kept if not it.mask.any()]
    groups = {it.pair.id: it.pair.group for it in kept if it.pair.group is not None}
    sources = {}
    for it in items:
        sources[_rel(it.pair.image, raw)] = it.sha_image
        sources[_rel(it.pair.mask, raw)] = it.sha_mask
    manifest = {
        "format": MANIFEST_FORMAT,
        "dataset": dataset,
        "size": size,
        "seed": seed,
        "split_rule": split_rule,
        "counts": {
            "pairs_found": len(items),
            "dropped": len(items) - len(kept),
            "kept": len(kept),
            **{k: len(v) for k, v in split.items()},
        },
        "drop_rule": adapter.drop_rule,
        "n_empty_masks": len(empty),
        "empty_mask_ids": empty,
        "image_rule": IMAGE_RULE,
        "mask_rule": MASK_RULES[adapter.mask_kind],
        "groups": "groups.json" if groups else None,
        "sources_sha256": dict(sorted(sources.items())),
    }
    with atomic_dir(out) as tmp:
        n = len(kept)
        images = np.lib.format.open_memmap(tmp / "images.npy", "w+", np.uint8, (n, size, size, 3))
        masks = np.lib.format.open_memmap(tmp / "masks.npy", "w+", np.uint8, (n, size, size))
        for row, it in enumerate(kept):
            images[row], masks[row] = it.image, it.mask
        images.flush()
        masks.flush()
        del images, masks
        _dump([it.pair.id for it in kept], tmp / "ids.json")
        _dump(split, tmp / "split.json")
        if groups:
            _dump(groups, tmp / "groups.json")
        _dump(manifest, tmp / "manifest.json")
    if empty:
        warnings.warn(
            f"{len(empty)} of {len(kept)} masks have no foreground (counted in the manifest): " + listing(empty),
            DatasetWarning,
            stacklevel=2,
        )
    return manifest


def load_defaults(params: Path) -> dict:
    """The prepare defaults, updated from the `prepare:` section of `params` if that file exists."""
    values = dict(DEFAULTS)
    if params.is_file():
        doc = yaml.safe_load(params.read_text(encoding="utf-8")) or {}
        section = (doc.get("prepare") or {}) if isinstance(doc, dict) else {}
        if not isinstance(section, dict):
            raise DatasetError(f"{params}: 'prepare' must be a mapping")
        for key in DEFAULTS:
            if key in section:
                values[key] = section[key]
    return values


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.prepare", description="Validate, resize and split a segmentation dataset."
    )
    ap.add_argument("--dataset", required=True, choices=sorted(ADAPTERS), help="dataset adapter")
    ap.add_argument("--raw", required=True, type=Path, help="the dataset as downloaded")
    ap.add_argument("--out", required=True, type=Path, help="output folder (replaced on success)")
    ap.add_argument("--size", type=int, help="side of the square output images (params: prepare.size, 224)")
    ap.add_argument("--seed", type=int, help="split seed (params: prepare.seed, 42)")
    ap.add_argument(
        "--split-by-patient",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep each patient's slices in one split part (brain_mri, tnbc; params: prepare.split_by_patient, false)",
    )
    ap.add_argument(
        "--params",
        type=Path,
        default=REPO_ROOT / "params.yaml",
        help="params file with a 'prepare:' section (default: params.yaml at the repo root)",
    )
    ap.add_argument("--workers", type=int, default=None, help="decoding threads (default: min(4, CPUs))")
    a = ap.parse_args(argv)

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    try:
        d = load_defaults(a.params)
        size = a.size if a.size is not None else int(d["size"])
        seed = a.seed if a.seed is not None else int(d["seed"])
        by_patient = a.split_by_patient if a.split_by_patient is not None else bool(d["split_by_patient"])
        m = prepare(a.dataset, a.raw, a.out, size, seed, by_patient, progress=True, workers=a.workers)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    c = m["counts"]
    print(
        f"{a.dataset}: {c['kept']} pairs ({c['train']} train / {c['val']} val / {c['test']} test), "
        f"{m['n_empty_masks']} empty masks, {c['dropped']} dropped -> {a.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
