"""Common parts of the dataset adapters: the error type, the pair record and the adapter base class."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from core.errors import UserError

# The file suffixes the reader (`datasets.reader`) decodes: the one list used by the adapters and predict.
IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"})
_JUNK = frozenset({"thumbs.db", "desktop.ini"})
MAX_LISTED = 10


class DatasetError(UserError, ValueError):
    """Bad or unexpected input data; the message names the file and the problem."""


class DatasetWarning(UserWarning):
    """Suspicious but allowed input, e.g. masks without foreground."""


def listing(items: Iterable[object], limit: int = MAX_LISTED) -> str:
    """Format a few items of a list for an error message."""
    items = [str(i) for i in items]
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


@dataclass(frozen=True)
class Pair:
    """One image and its mask as found on disk.

    `subset` is the official split a file came from ("train"/"test") where the dataset has one;
    `group` is the patient (or slide) the pair belongs to, where known.
    """

    id: str
    image: Path
    mask: Path
    subset: str | None = None
    group: str | None = None


class Adapter:
    """Finds image/mask pairs of one dataset in its downloaded layout.

    Subclasses set `name`, `layout` (the expected tree, used in error messages and the datasets reference),
    `split` ("8:1:1", "4:1" or "official"), `mask_kind` ("binary", "label" or "auto", see
    `datasets.reader.binarize`) and implement `find_pairs`. `keep` may exclude pairs by their decoded
    mask; the rule is then described by `drop_rule` and the number dropped goes to the manifest.
    `expected_pairs` is the number of pairs of the complete published dataset (before `keep`).
    """

    name: ClassVar[str]
    display_name: ClassVar[str] = ""  # the paper's name of the dataset, used in reports
    layout: ClassVar[str]
    split: ClassVar[str] = "8:1:1"
    mask_kind: ClassVar[str] = "binary"
    drop_rule: ClassVar[str | None] = None
    # pairs in the complete download as its publishers describe it (None: any number, e.g. your own folder);
    # `python -m datasets check` compares the pairs it finds with it
    expected_pairs: ClassVar[int | None] = None

    def find_pairs(self, root: Path) -> list[Pair]:
        raise NotImplementedError

    def keep(self, mask: np.ndarray) -> bool:
        """Whether a pair with this binarised source mask enters the prepared dataset."""
        return True

    def pairs(self, root: str | Path) -> list[Pair]:
        """All pairs under `root`, sorted by id; raises DatasetError on a bad tree."""
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: not a directory")
        pairs = sorted(self.find_pairs(root), key=lambda p: p.id)
        if not pairs:
            raise DatasetError(f"{root}: no image/mask pairs found")
        seen: dict[str, Pair] = {}
        for p in pairs:
            if p.id in seen:
                raise DatasetError(f"id {p.id!r} occurs twice: {seen[p.id].image} and {p.image}")
            seen[p.id] = p
        return pairs


def image_files(directory: Path, exts: Iterable[str] = IMAGE_EXTS) -> list[Path]:
    """Files of `directory` (not recursive) with one of `exts` (case-insensitive), sorted.

    Hidden files and OS junk (Thumbs.db) are skipped; other files are not image data and are ignored.
    """
    exts = {e.lower() for e in exts}
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and p.suffix.lower() in exts and not p.name.startswith(".") and p.name.lower() not in _JUNK
    )


def subdirs(directory: Path) -> list[Path]:
    """Visible subdirectories, sorted."""
    return sorted(c for c in directory.iterdir() if c.is_dir() and not c.name.startswith("."))


def by_stem(files: Iterable[Path], key: Callable[[str], str | None] = lambda s: s) -> dict[str, Path]:
    """Map key(stem) -> file, skipping files whose key is None; two files with one key is an error."""
    out: dict[str, Path] = {}
    for f in files:
        k = key(f.stem)
        if k is None:
            continue
        if k in out:
            raise DatasetError(f"id {k!r} occurs twice: {out[k]} and {f}")
        out[k] = f
    return out


def match(
    images: dict[str, Path],
    masks: dict[str, Path],
    expect_mask: Callable[[Path], object],
    expect_image: Callable[[Path], object],
) -> list[tuple[str, Path, Path]]:
    """Pair two id->file maps; any image without mask or mask without image is an error."""
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    problems = []
    if no_mask:
        problems.append(
            f"{len(no_mask)} image(s) without a mask: "
            + listing(f"{images[k]} (expected {expect_mask(images[k])})" for k in no_mask)
        )
    if no_image:
        problems.append(
            f"{len(no_image)} mask(s) without an image: "
            + listing(f"{masks[k]} (expected {expect_image(masks[k])})" for k in no_image)
        )
    if problems:
        raise DatasetError("; ".join(problems))
    return [(k, images[k], masks[k]) for k in sorted(images)]


Where = Path | Callable[[Path], Path] | None


def _folder(where: Where, other: Path) -> Path:
    """The folder a counterpart of `other` is expected in: `where`, `where(other's folder)`, or other's folder."""
    if where is None:
        return other.parent
    return where(other.parent) if callable(where) else Path(where)


def pair_by_stem(
    images: Iterable[Path],
    masks: Iterable[Path],
    *,
    suffix: str = "",
    mask_dir: Where = None,
    image_dir: Where = None,
    mask_ext: str | None = None,
    image_ext: str | None = None,
) -> list[tuple[str, Path, Path]]:
    """Pair image and mask files by stem: a mask's stem is its image's stem + `suffix` (``_anno``, ``_mask``).

    The id is the image's stem. With a `suffix`, files of `images` whose stem ends with it are masks,
    not images (so one folder listing may be passed as both), and files of `masks` without it are
    ignored. A missing counterpart is a DatasetError naming the file it expected: in `mask_dir` /
    `image_dir` (a folder, or a function of the counterpart's folder; default: the same folder), with
    `mask_ext` / `image_ext` (default: the counterpart's own suffix). Duplicate ids are an error.
    """
    if suffix:
        image_map = by_stem(images, lambda s: None if s.endswith(suffix) else s)
        mask_map = by_stem(masks, lambda s: s[: -len(suffix)] if s.endswith(suffix) else None)
    else:
        image_map, mask_map = by_stem(images), by_stem(masks)

    def expect_mask(p: Path) -> Path:
        return _folder(mask_dir, p) / f"{p.stem}{suffix}{mask_ext or p.suffix}"

    def expect_image(p: Path) -> Path:
        return _folder(image_dir, p) / f"{p.stem[: len(p.stem) - len(suffix)]}{image_ext or p.suffix}"

    return match(image_map, mask_map, expect_mask, expect_image)


def find_dir(root: Path, name: str | re.Pattern[str], depth: int = 3) -> Path:
    """The one directory called `name` at or below `root` (at most `depth` levels down)."""

    def ok(p: Path) -> bool:
        return p.name == name if isinstance(name, str) else bool(name.fullmatch(p.name))

    if ok(root):
        return root
    found: list[Path] = []
    level = [root]
    for _ in range(depth):
        nxt = []
        for d in level:
            for c in sorted(d.iterdir()):
                if c.is_dir() and not c.name.startswith("."):
                    (found if ok(c) else nxt).append(c)
        if found:
            break
        level = nxt
    label = name if isinstance(name, str) else name.pattern
    if not found:
        raise DatasetError(f"{root}: no directory {label!r} found (searched {depth} levels down)")
    if len(found) > 1:
        raise DatasetError(
            f"{root}: {len(found)} directories match {label!r}: {listing(found)}; pass one of them as --raw"
        )
    return found[0]
