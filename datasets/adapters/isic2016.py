"""ISIC 2016 challenge, part 1 (lesion segmentation): official 900 training and 379 test images."""

from __future__ import annotations

from pathlib import Path

from datasets.base import Adapter, Pair, find_dir, image_files, pair_by_stem

_PREFIX = "ISBI2016_ISIC_Part1_"
_SUFFIX = "_Segmentation"


class ISIC2016(Adapter):
    name = "isic2016"
    display_name = "ISIC2016"
    expected_pairs = 1279
    split = "official"
    layout = """\
<root>/                      (the four official archives unpacked side by side)
  ISBI2016_ISIC_Part1_Training_Data/ISIC_<id>.jpg
  ISBI2016_ISIC_Part1_Training_GroundTruth/ISIC_<id>_Segmentation.png
  ISBI2016_ISIC_Part1_Test_Data/ISIC_<id>.jpg
  ISBI2016_ISIC_Part1_Test_GroundTruth/ISIC_<id>_Segmentation.png
900 training and 379 test pairs; the official split is kept, there is no validation split."""

    def find_pairs(self, root: Path) -> list[Pair]:
        pairs = []
        for subset, part in (("train", "Training"), ("test", "Test")):
            images_dir = find_dir(root, f"{_PREFIX}{part}_Data", depth=2)
            masks_dir = find_dir(root, f"{_PREFIX}{part}_GroundTruth", depth=2)
            found = pair_by_stem(
                image_files(images_dir, (".jpg", ".jpeg", ".png")),
                image_files(masks_dir, (".png",)),
                suffix=_SUFFIX,
                mask_dir=masks_dir,
                image_dir=images_dir,
                mask_ext=".png",
                image_ext=".jpg",
            )
            pairs += [Pair(k, i, m, subset=subset) for k, i, m in found]
        return pairs
