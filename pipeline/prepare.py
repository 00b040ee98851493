"""Prepare a dataset: validate every pair, resize, binarise, split, and write arrays plus metadata.

    python -m pipeline.prepare --dataset NAME --raw DIR --out DIR [--size 224] [--seed 42]
                               [--split-by-patient] [--params params.yaml]

Defaults for --size, --seed and --split-by-patient come from the `prepare:` section of params.yaml
(read and validated by `engine.params.load_params`; `--params` names another file); flags override them.

Output (`--out`, written to a temporary folder next to it and renamed at the end, so an existing
`--out` is replaced only on success). An existing `--out` is replaced only when it is empty or is an
earlier output of this command (a manifest.json of ours and nothing but the files below); any other
folder is refused with exit status 2, so `--out runs` cannot wipe checkpoints.
- images.npy  N x S x S x 3 uint8 RGB; masks.npy  N x S x S uint8 in {0, 1}; row i is ids.json[i]
- ids.json    the ids in row order (sorted)
- split.json  {"train": [...], "val": [...], "test": [...]} (sorted id lists)
- groups.json id -> patient/slide, for datasets that have groups (brain_mri, tnbc)
- manifest.json  dataset, size, seed, rules, counts, empty masks, the mask rule with the number of masks
  that took each of its branches (`mask_rule_counts`), the mean percentage of foreground pixels per
  kept image (`foreground_percent`), sha256 of every source file read.

Masks: one rule for every dataset, chosen by the adapter's `mask_kind` and the values in each file
(`datasets.reader`): label masks (GlaS) foreground > 0; otherwise a mask with at most two values (0/1,
0/255, 0/v) has its higher value as foreground, a greyscale mask (JPEG noise) is foreground >= 128,
and in a user folder (`folder`) a multi-valued integer mask below 128 is read as labels (> 0).

Resizing: images with cv2.INTER_AREA when neither side grows, bilinear otherwise; masks are
binarised at source resolution and resized with nearest neighbour (cv2.INTER_NEAREST_EXACT,
pixel-centre aligned). The aspect ratio is not kept (the paper resizes every image to 224 x 224).

Checks: the pairs go through the integrity check of ``python -m datasets check`` (`datasets.check`, on the
arrays decoded here, nothing is read twice). Unpaired files, unreadable or corrupt files and image/mask
size mismatches make the data unusable: every such problem is listed, then the expected layout, and the
stage stops (a tree of another dataset is named: "this tree looks like ph2"). A pair count that differs
from the dataset's documented one, duplicate images and masks that are foreground everywhere are
warnings: the stage goes on.

Errors in the input (`datasets.DatasetError`) print `error: ...` to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.cli import run
from core.fsutil import atomic_dir
from datasets.base import Adapter, DatasetError, DatasetWarning, Pair, listing
from datasets.check import PairFacts, layout_hint, load_pair, summarise
from datasets.reader import MASK_RULES
from datasets.registry import adapter_names, get_adapter
from datasets.resize import resize_image, resize_mask
from datasets.splits import grouped_split, official_split, random_split
from engine.params import load_params

MANIFEST_FORMAT = 2  # 2: mask_rule_counts and foreground_percent added
OUTPUT_FILES = frozenset({"images.npy", "masks.npy", "ids.json", "split.json", "groups.json", "manifest.json"})
IMAGE_RULE = (
    "RGB uint8; grayscale replicated, palette expanded, alpha dropped; >8-bit integer data "
    "scaled by 255/max when max > 255; resized with INTER_AREA (shrinking) or bilinear"
)


@dataclass
class _Item:
    pair: Pair
    image: np.ndarray | None  # resized; None when the pair is dropped by the adapter's rule or unusable
    mask: np.ndarray | None
    sha_image: str
    sha_mask: str
    mask_rule: str
    facts: PairFacts


def _load(pair: Pair, adapter: Adapter, size: int) -> _Item:
    """Read, hash and decode both files once (`datasets.check.load_pair`); resize if the pair is kept."""
    got = load_pair(pair, adapter)
    item = _Item(pair, None, None, got.facts.image_sha, got.sha_mask, got.mask_rule, got.facts)
    if got.image is None or not adapter.keep(got.mask):
        return item
    item.image, item.mask = resize_image(got.image, size), resize_mask(got.mask, size)
    return item


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


def check_replaceable(out: Path) -> None:
    """Raise DatasetError unless `out` is absent, empty, or an earlier output of :func:`prepare`."""
    if not out.exists():
        return
    if not out.is_dir():
        raise DatasetError(f"--out {out}: exists and is not a folder")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        ours = isinstance(manifest, dict) and {"format", "dataset", "size"} <= set(manifest)
    except (OSError, ValueError):
        ours = False
    foreign = [e for e in entries if e not in OUTPUT_FILES]
    if ours and not foreign:
        return
    why = f"files pipeline.prepare does not write: {listing(foreign)}" if ours else "no manifest.json of ours"
    raise DatasetError(
        f"--out {out}: not empty and not an earlier output of pipeline.prepare ({why}); refusing to replace it. "
        "Pass a new or empty folder (or delete this one yourself)."
    )


def _dump(obj: object, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def prepare(
    dataset: str,
    raw: str | Path,
    out: str | Path,
    *,
    size: int = 224,
    seed: int = 42,
    split_by_patient: bool = False,
    progress: bool = False,
    workers: int | None = None,
) -> dict:
    """Prepare `dataset` from `raw` into `out`; returns the manifest. Raises DatasetError on bad input."""
    adapter = get_adapter(dataset)
    raw, out = Path(raw), Path(out)
    _check_paths(raw, out, size)
    items = _read_pairs(dataset, adapter, raw, size, progress=progress, workers=workers)
    kept = [it for it in items if it.image is not None]
    if not kept:
        raise DatasetError(f"{raw}: no pair is left after applying the rule: {adapter.drop_rule}")
    split, split_rule = _make_split(adapter, [it.pair for it in kept], seed, split_by_patient)
    groups = {it.pair.id: it.pair.group for it in kept if it.pair.group is not None}
    manifest = _manifest(
        dataset, adapter, items, kept, raw, split=split, split_rule=split_rule, groups=groups, size=size, seed=seed
    )
    _write(out, kept, split, groups, manifest)
    empty = manifest["empty_mask_ids"]
    if empty:
        warnings.warn(
            f"{len(empty)} of {len(kept)} masks have no foreground (counted in the manifest): " + listing(empty),
            DatasetWarning,
            stacklevel=2,
        )
    return manifest


def _check_paths(raw: Path, out: Path, size: int) -> None:
    """Refuse a bad size, overlapping --raw and --out, an --out that is not ours to replace and a missing --raw."""
    if size < 1:
        raise DatasetError(f"--size must be positive, got {size}")
    raw_abs, out_abs = raw.resolve(), out.resolve()
    if raw_abs == out_abs or out_abs in raw_abs.parents or raw_abs in out_abs.parents:
        raise DatasetError(f"--out {out} and --raw {raw} overlap; replacing --out could delete the source data")
    check_replaceable(out)
    if not raw.is_dir():
        raise DatasetError(f"--raw {raw}: no such directory")


def _read_pairs(
    dataset: str, adapter: Adapter, raw: Path, size: int, *, progress: bool, workers: int | None
) -> list[_Item]:
    """Load every pair on a few threads and run the integrity check: its fatal problems raise, the rest warn."""
    items: list[_Item] = []
    try:
        pairs = adapter.pairs(raw)
        workers = workers or min(4, os.cpu_count() or 1)
        pool = ThreadPoolExecutor(workers)
        try:
            results = pool.map(lambda p: _load(p, adapter, size), pairs)
            for item in tqdm(
                results,
                total=len(pairs),
                desc=f"prepare {dataset}",
                unit="pair",
                disable=not (progress and sys.stderr.isatty()),
                file=sys.stderr,
            ):
                items.append(item)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        report = summarise(adapter, raw, [it.facts for it in items])
        fatal = [p.text for p in report.problems if p.fatal]
        if fatal:
            raise DatasetError("; ".join(fatal))
    except DatasetError as e:
        hint = layout_hint(raw, dataset) if not items else ""
        raise DatasetError(f"{e}{hint}\nexpected layout for --dataset {dataset}:\n{adapter.layout}") from e
    for p in report.problems:
        warnings.warn(f"{p.kind}: {p.text}", DatasetWarning, stacklevel=3)  # attributed to prepare's caller
    return items


def _manifest(
    dataset: str,
    adapter: Adapter,
    items: list[_Item],
    kept: list[_Item],
    raw: Path,
    *,
    split: dict,
    split_rule: str,
    groups: dict,
    size: int,
    seed: int,
) -> dict:
    """manifest.json: the rules applied, what they counted and the sources read."""
    empty = [it.pair.id for it in kept if not it.mask.any()]
    return {
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
        "mask_kind": adapter.mask_kind,
        "mask_rule": MASK_RULES[adapter.mask_kind],
        "mask_rule_counts": dict(sorted(Counter(it.mask_rule for it in items).items())),
        "foreground_percent": round(100.0 * float(np.mean([it.mask.mean() for it in kept])), 4),
        "groups": "groups.json" if groups else None,
        "sources_sha256": _sources(items, raw),
    }


def _sources(items: list[_Item], raw: Path) -> dict[str, str]:
    """The sha256 of every source file read, by its path under `raw`, sorted."""
    sources = {}
    for it in items:
        sources[_rel(it.pair.image, raw)] = it.sha_image
        sources[_rel(it.pair.mask, raw)] = it.sha_mask
    return dict(sorted(sources.items()))


def _write(out: Path, kept: list[_Item], split: dict, groups: dict, manifest: dict) -> None:
    """Write the arrays and the JSON files to a temporary folder renamed to `out` at the end."""
    size = manifest["size"]
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.prepare", description="Validate, resize and split a segmentation dataset."
    )
    ap.add_argument("--dataset", required=True, choices=adapter_names(), help="dataset adapter")
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
        "--params", type=Path, default=None, help="params file (default: params.yaml here, else the repository's)"
    )
    ap.add_argument("--workers", type=int, default=None, help="decoding threads (default: min(4, CPUs))")
    a = ap.parse_args(argv)
    if a.size is not None and a.size < 1:
        ap.error(f"argument --size: must be a positive number of pixels, got {a.size}")
    if a.workers is not None and a.workers < 1:
        ap.error(f"argument --workers: must be at least 1, got {a.workers}")
    defaults = load_params(a.params).prepare
    size = a.size if a.size is not None else defaults.size
    seed = a.seed if a.seed is not None else defaults.seed
    by_patient = a.split_by_patient if a.split_by_patient is not None else defaults.split_by_patient

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        m = prepare(
            a.dataset, a.raw, a.out, size=size, seed=seed, split_by_patient=by_patient, progress=True, workers=a.workers
        )
    c = m["counts"]
    print(
        f"{a.dataset}: {c['kept']} pairs ({c['train']} train / {c['val']} val / {c['test']} test), "
        f"{m['n_empty_masks']} empty masks, {m['foreground_percent']:.2f}% foreground, "
        f"{c['dropped']} dropped -> {a.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
