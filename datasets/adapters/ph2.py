"""PH2 (Mendonca et al., 2013): 200 dermoscopic images with RGB BMP lesion masks."""

from __future__ import annotations

from pathlib import Path

from datasets.base import Adapter, DatasetError, Pair, find_dir, listing


class PH2(Adapter):
    name = "ph2"
    display_name = "PH2"
    expected_pairs = 200
    layout = """\
PH2Dataset/                  (--raw may point here, to "PH2 Dataset images", or above)
  PH2 Dataset images/
    IMD<nnn>/
      IMD<nnn>_Dermoscopic_Image/IMD<nnn>.bmp   761-769 x 553-577 RGB BMP
      IMD<nnn>_lesion/IMD<nnn>_lesion.bmp       RGB BMP mask, 0/255
      IMD<nnn>_roi/                             (ignored)
  PH2_dataset.txt, PH2_dataset.xlsx             (ignored)"""

    def find_pairs(self, root: Path) -> list[Pair]:
        base = find_dir(root, "PH2 Dataset images")
        cases = sorted(d for d in base.iterdir() if d.is_dir() and d.name.startswith("IMD"))
        if not cases:
            raise DatasetError(f"{base}: no IMD<nnn> case folders")
        pairs, missing = [], []
        for case in cases:
            k = case.name
            image = case / f"{k}_Dermoscopic_Image" / f"{k}.bmp"
            mask = case / f"{k}_lesion" / f"{k}_lesion.bmp"
            if not image.is_file():
                missing.append(f"{image} (image of case {k})")
            if not mask.is_file():
                missing.append(f"{mask} (mask of case {k})")
            if image.is_file() and mask.is_file():
                pairs.append(Pair(k, image, mask))
        if missing:
            raise DatasetError(f"{len(missing)} file(s) missing: {listing(missing)}")
        return pairs
