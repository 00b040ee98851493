"""TNBC nuclei (Naylor et al., 2018): 50 H&E tiles of 512 x 512 from 11 slides."""

from __future__ import annotations

import re
from pathlib import Path

from datasets.base import Adapter, DatasetError, Pair, image_files, listing, pair_by_stem, subdirs

_SLIDE = re.compile(r"Slide_(\w+)")
_GT = re.compile(r"GT_(\w+)")


class TNBC(Adapter):
    name = "tnbc"
    display_name = "TNBC"
    expected_pairs = 50
    split = "4:1"
    layout = """\
TNBC_NucleiSegmentation/     (--raw may point here or to a folder containing it)
  Slide_<ss>/<ss>_<k>.png    512 x 512 H&E tiles (RGB or RGBA PNG)
  GT_<ss>/<ss>_<k>.png       same names, 0/255 nuclei masks
50 pairs split 4:1 (40/10) at random, no validation split; the slide <ss> is kept as group."""

    def _base(self, root: Path) -> Path:
        level = [root]
        for _ in range(3):
            hits = [d for d in level if any(_SLIDE.fullmatch(c.name) for c in d.iterdir() if c.is_dir())]
            if len(hits) > 1:
                raise DatasetError(f"{root}: several TNBC folders found: {listing(hits)}; pass one as --raw")
            if hits:
                return hits[0]
            level = [c for d in level for c in subdirs(d)]
        raise DatasetError(f"{root}: no Slide_<ss> folders found")

    def find_pairs(self, root: Path) -> list[Pair]:
        base = self._base(root)
        dirs = sorted(d for d in base.iterdir() if d.is_dir())
        slides = {m.group(1): d for d in dirs if (m := _SLIDE.fullmatch(d.name))}
        gts = {m.group(1): d for d in dirs if (m := _GT.fullmatch(d.name))}
        found = pair_by_stem(
            [f for d in slides.values() for f in image_files(d, (".png",))],
            [f for d in gts.values() for f in image_files(d, (".png",))],
            mask_dir=lambda d: base / f"GT_{d.name[len('Slide_') :]}",
            image_dir=lambda d: base / f"Slide_{d.name[len('GT_') :]}",
        )
        return [Pair(k, i, m, group=i.parent.name[len("Slide_") :]) for k, i, m in found]
