"""GlaS / Warwick QU (Sirinukunwattana et al., 2017): 165 gland images with instance annotations."""

from __future__ import annotations

import re
from pathlib import Path

from datasets.base import Adapter, DatasetError, Pair, image_files, pair_by_stem, subdirs

_NAME = re.compile(r"(train|testA|testB)_\d+(_anno)?")


class GlaS(Adapter):
    name = "glas"
    display_name = "GlaS"
    expected_pairs = 165
    mask_kind = "label"
    layout = """\
Warwick QU Dataset (Released 2016_07_08)/   (--raw may point here or to a folder containing it)
  train_<k>.bmp   train_<k>_anno.bmp        k = 1..85
  testA_<k>.bmp   testA_<k>_anno.bmp        k = 1..60
  testB_<k>.bmp   testB_<k>_anno.bmp        k = 1..20
  Grade.csv                                 (ignored)
Annotations are gland instance labels (0 = background); every gland becomes foreground.
All 165 pairs are split 8:1:1 at random (the official train/testA/testB division is not used)."""

    @staticmethod
    def _glas_files(d: Path) -> list[Path]:
        return [p for p in image_files(d, (".bmp",)) if _NAME.fullmatch(p.stem)]

    def find_pairs(self, root: Path) -> list[Pair]:
        base, level = None, [root]
        for _ in range(3):
            hits = [d for d in level if self._glas_files(d)]
            if len(hits) > 1:
                raise DatasetError(f"{root}: several GlaS folders found: {hits}; pass one of them as --raw")
            if hits:
                base = hits[0]
                break
            level = [c for d in level for c in subdirs(d)]
        if base is None:
            raise DatasetError(f"{root}: no train_<k>.bmp / testA_<k>.bmp / testB_<k>.bmp files found")
        files = self._glas_files(base)
        found = pair_by_stem(files, files, suffix="_anno")
        return [Pair(k, i, m) for k, i, m in found]
