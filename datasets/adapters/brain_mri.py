"""LGG brain MRI (Buda et al., 2019; Kaggle `kaggle_3m`): FLAIR slices of 110 patients."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from datasets.base import Adapter, DatasetError, Pair, find_dir, image_files, pair_by_stem

_TIF = (".tif", ".tiff")
_DATE = re.compile(r"_\d{8}$")


def patient_of(case_dir: str) -> str:
    """TCGA_CS_4941_19960909 -> TCGA_CS_4941 (the case id without the acquisition date)."""
    return _DATE.sub("", case_dir)


class BrainMRI(Adapter):
    name = "brain_mri"
    display_name = "Brain-MRI"
    expected_pairs = 3929
    layout = """\
kaggle_3m/                   (--raw may point here or to a folder containing exactly one kaggle_3m;
                              the Kaggle archive holds two copies: pass one)
  TCGA_<patient>_<date>/     110 case folders
    TCGA_<patient>_<date>_<k>.tif        256 x 256 3-channel slice
    TCGA_<patient>_<date>_<k>_mask.tif   0/255 mask of that slice
  data.csv, README.md        (ignored)
Only slices whose mask has tumour are kept (1373 of 3929); the patient id is kept per slice."""
    drop_rule = "slices whose mask has no foreground at source resolution are excluded"

    def find_pairs(self, root: Path) -> list[Pair]:
        base = root if any(root.glob("TCGA_*/")) else find_dir(root, "kaggle_3m")
        cases = sorted(d for d in base.iterdir() if d.is_dir() and d.name.startswith("TCGA_"))
        if not cases:
            raise DatasetError(f"{base}: no TCGA_* case folders")
        pairs = []
        for case in cases:
            files = image_files(case, _TIF)
            found = pair_by_stem(files, files, suffix="_mask")
            pairs += [Pair(k, i, m, group=patient_of(case.name)) for k, i, m in found]
        return pairs

    def keep(self, mask: np.ndarray) -> bool:
        return bool(mask.any())
