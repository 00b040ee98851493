"""Integrity check of a downloaded dataset before it is used (nnU-Net checks a dataset before planning).

``python -m datasets check NAME --raw DIR`` and ``pipeline.prepare`` run the same code: every pair the
adapter finds is read and decoded once (:func:`load_pair`), and :func:`summarise` turns the per-pair facts
into one table and a list of problems, one per kind:

| kind | what | ``check`` | ``prepare`` |
|---|---|---|---|
| layout | the adapter cannot pair the tree (unpaired files, missing folders, duplicate ids) | exit 2 | error |
| unreadable | a file no decoder reads (corrupt, truncated, empty) | exit 2 | error |
| size mismatch | an image and its mask differ in size | exit 2 | error |
| count | pairs found differ from the dataset's documented count (`Adapter.expected_pairs`) | exit 2 | warning |
| duplicates | the same image file (sha256 of its bytes) under several ids | exit 2 | warning |
| mask values | masks that are foreground everywhere (inverted, or not a mask) | exit 2 | warning |

The first three make the data unusable; the others may be deliberate (a subset, your own copy), so
``prepare`` warns and goes on. A tree that the adapter cannot read is tried with the other datasets'
adapters, and the message says which dataset it looks like.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datasets.base import Adapter, DatasetError, Pair, listing
from datasets.reader import as_rgb, binarize_with_rule, decode, read_bytes
from datasets.registry import adapter_class, adapter_names, get_adapter

FATAL = ("layout", "unreadable", "size mismatch")


@dataclass(frozen=True)
class PairFacts:
    """What the check needs of one pair; `error` and `mismatch` hold the message of a failed pair."""

    id: str
    image_size: tuple[int, int] | None = None  # width, height
    image_sha: str = ""
    mask_values: str = ""  # e.g. "0/255", "many levels (>= 128)", "labels 0..7 (> 0)"
    foreground: float | None = None  # fraction of foreground pixels
    error: str | None = None
    mismatch: str | None = None


@dataclass
class Loaded:
    """A pair decoded once: its facts, the RGB image and the binarised mask (None when unusable)."""

    facts: PairFacts
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    sha_mask: str = ""
    mask_rule: str = ""


def _mask_values(raw: np.ndarray, rule: str) -> str:
    arr = raw
    if arr.ndim == 3:  # as the reader: alpha dropped, colour reduced to the maximum over channels
        arr = (arr[..., :1] if arr.shape[2] == 2 else arr[..., :3]).max(axis=2)
    if rule == "label>0":
        return f"labels 0..{int(arr.max())} (> 0)"
    if rule == "threshold128":
        return "many levels (>= 128)"
    if arr.dtype == np.uint8:
        levels = np.flatnonzero(np.bincount(arr.ravel(), minlength=256))
    else:
        levels = np.unique(arr)
    values = [f"{v:g}" if isinstance(v, float) else str(v) for v in levels.tolist()]
    return "/".join(values) if len(values) == 2 else f"{values[0]} only"


def load_pair(pair: Pair, adapter: Adapter) -> Loaded:
    """Read and decode both files of `pair` once; a failure is recorded in the facts, not raised."""
    try:
        img_bytes, sha_img = read_bytes(pair.image)
        mask_bytes, sha_mask = read_bytes(pair.mask)
        img = as_rgb(decode(img_bytes, pair.image))
        raw = decode(mask_bytes, pair.mask, labels=adapter.mask_kind == "label")
        mask, rule = binarize_with_rule(raw, adapter.mask_kind)
    except DatasetError as e:
        return Loaded(PairFacts(pair.id, error=str(e)))
    size = (img.shape[1], img.shape[0])
    values = _mask_values(raw, rule)
    if img.shape[:2] != mask.shape:
        mismatch = (
            f"size mismatch: image {pair.image} is {img.shape[1]}x{img.shape[0]}, "
            f"mask {pair.mask} is {mask.shape[1]}x{mask.shape[0]} (width x height)"
        )
        return Loaded(PairFacts(pair.id, size, sha_img, values, mismatch=mismatch))
    facts = PairFacts(pair.id, size, sha_img, values, float(mask.mean()))
    return Loaded(facts, img, mask, sha_mask, rule)


@dataclass(frozen=True)
class Problem:
    kind: str
    text: str

    @property
    def fatal(self) -> bool:
        return self.kind in FATAL


@dataclass
class Report:
    dataset: str
    root: Path
    pairs: int
    expected: int | None
    rows: list[tuple[str, str]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def table(self) -> str:
        from tabulate import tabulate

        head = f"{self.dataset} in {self.root}"
        return head + "\n" + tabulate(self.rows, headers=["check", "result"], tablefmt="github", disable_numparse=True)

    def problem_lines(self) -> list[str]:
        return [f"problem ({p.kind}): {p.text}" for p in self.problems]


def looks_like(root: Path, exclude: str) -> list[tuple[str, int]]:
    """Paper datasets (adapters with a documented count) other than `exclude` whose adapter pairs `root`."""
    found = []
    for name in adapter_names():
        if name == exclude or adapter_class(name).expected_pairs is None:
            continue
        try:
            found.append((name, len(get_adapter(name).pairs(root))))
        except (DatasetError, OSError):
            continue
    return found


def layout_hint(root: Path, name: str) -> str:
    """ "; this tree looks like ph2 (its adapter finds 6 pairs here)" or ""."""
    like = looks_like(root, name)
    if not like:
        return ""
    names = " or ".join(f"{n} (its adapter finds {k} pairs here)" for n, k in like)
    return f"; this tree looks like {names}"


def _sizes(sizes: list[tuple[int, int]]) -> str:
    if not sizes:
        return "-"
    counts = Counter(sizes)
    (w, h), top = counts.most_common(1)[0]
    if len(counts) == 1:
        return f"all {w}x{h}"
    areas = sorted(counts, key=lambda s: (s[0] * s[1], s))
    lo, hi = areas[0], areas[-1]
    return f"{lo[0]}x{lo[1]} to {hi[0]}x{hi[1]}; {len(counts)} distinct; most common {w}x{h} ({top} of {len(sizes)})"


def summarise(adapter: Adapter, root: Path, facts: list[PairFacts]) -> Report:
    """The table rows and the problems of one dataset from its pairs' facts (module docstring)."""
    n, expected = len(facts), adapter.expected_pairs
    report = Report(adapter.name, root, n, expected)
    ok = [f for f in facts if f.error is None and f.mismatch is None]
    errors = [f.error for f in facts if f.error]
    mismatches = [f.mismatch for f in facts if f.mismatch]
    by_sha: dict[str, list[str]] = defaultdict(list)
    for f in facts:
        if f.image_sha:
            by_sha[f.image_sha].append(f.id)
    dupes = [ids for ids in by_sha.values() if len(ids) > 1]
    empty = [f.id for f in ok if f.foreground == 0]
    full = [f.id for f in ok if f.foreground == 1]
    values = Counter(f.mask_values for f in facts if f.mask_values)

    if expected is not None and n != expected:
        report.problems.append(
            Problem(
                "count",
                f"{n} pairs found, {adapter.display_name} has {expected} "
                f"({'an incomplete download' if n < expected else 'extra files'}, or another version)",
            )
        )
    if errors:
        report.problems.append(
            Problem("unreadable", f"{len(errors)} unreadable or corrupt file(s): {listing(errors, 3)}"),
        )
    if mismatches:
        report.problems.append(
            Problem("size mismatch", f"{len(mismatches)} image/mask size mismatch(es): {listing(mismatches, 3)}")
        )
    if dupes:
        groups = [" = ".join(ids) for ids in dupes]
        report.problems.append(
            Problem(
                "duplicates", f"{len(dupes)} image file(s) occur under several ids (same sha256): {listing(groups, 5)}"
            )
        )
    if full:
        report.problems.append(
            Problem(
                "mask values", f"{len(full)} mask(s) foreground everywhere (inverted, or not a mask?): {listing(full)}"
            )
        )

    drop = f"; {adapter.drop_rule}" if adapter.drop_rule else ""
    fg = [f.foreground for f in ok if f.foreground is not None]
    report.rows = [
        ("pairs found", f"{n}" + (f" (documented: {expected})" if expected is not None else "")),
        ("unreadable or corrupt files", str(len(errors))),
        ("image/mask size mismatches", str(len(mismatches))),
        ("duplicate images (sha256)", str(sum(len(ids) - 1 for ids in dupes))),
        ("mask values", "; ".join(f"{v}: {k}" for v, k in values.most_common(4)) + (" ..." if len(values) > 4 else "")),
        ("masks without foreground", f"{len(empty)}{drop}"),
        ("masks foreground everywhere", str(len(full))),
        ("mean foreground", f"{100 * float(np.mean(fg)):.2f}%" if fg else "-"),
        ("image sizes (W x H)", _sizes([f.image_size for f in facts if f.image_size])),
    ]
    return report


def check(
    name: str,
    root: str | Path,
    workers: int | None = None,
    wrap: Callable[[Iterable, int], Iterable] | None = None,
) -> Report:
    """Check dataset `name` under `root` (the module docstring's rules); never raises for bad data."""
    adapter = get_adapter(name)
    root = Path(root)
    try:
        pairs = adapter.pairs(root)
    except DatasetError as e:
        report = Report(name, root, 0, adapter.expected_pairs, [("pairs found", "0")])
        report.problems.append(Problem("layout", f"{e}{layout_hint(root, name) if root.is_dir() else ''}"))
        return report
    with ThreadPoolExecutor(workers or min(4, os.cpu_count() or 1)) as pool:
        results = pool.map(lambda p: load_pair(p, adapter).facts, pairs)
        facts = list(wrap(results, len(pairs)) if wrap else results)
    return summarise(adapter, root, facts)
