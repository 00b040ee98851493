"""ISIC 2016 challenge, part 1 (lesion segmentation): official 900 training and 379 test images."""

from __future__ import annotations

from pathlib import Path

from datasets.base import Adapter, Pair, by_stem, find_dir, image_files, match

_PREFIX = "ISBI2016_ISIC_Part1_"
_SUFFIX = "_Segmentation"


class ISIC2016(Adapter):
    name = "isic2016"
    display_name = "ISIC2016"
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
            images = by_stem(image_files(images_dir, (".jpg", ".jpeg", ".png")))
            masks = by_stem(
                image_files(masks_dir, (".png",)), lambda s: s[: -len(_SUFFIX)] if s.endswith(_SUFFIX) else None
            )
            found = match(
                images,
                masks,
                lambda p, d=masks_dir: d / f"{p.stem}{_SUFFIX}.png",
                lambda p, d=images_dir: d / f"{p.stem[: -len(_SUFFIX)]}.jpg",
            )
            pairs += [Pair(k, i, m, subset=subset) for k, i, m in found]
        return pairs
