"""A user's own data: `images/` and `masks/` folders paired by file stem."""

from __future__ import annotations

from pathlib import Path

from datasets.base import IMAGE_EXTS, Adapter, DatasetError, Pair, find_dir, image_files, pair_by_stem


class Folder(Adapter):
    name = "folder"
    display_name = "Folder"
    layout = """\
<root>/                      (--raw may point here or to a folder containing it)
  images/<id>.<ext>          any of png, jpg, jpeg, bmp, tif, tiff, gif, webp (first frame)
  masks/<id>.<ext>           same stem <id>, any of those formats (may differ from the image's);
                             colour reduced to the max over channels, then: two values (0/1, 0/255,
                             0/v) -> the higher is foreground; integer labels below 128 (0, 1, 2, ...)
                             -> > 0; other greyscale (JPEG noise) -> >= 128"""
    mask_kind = "auto"
    exts: tuple[str, ...] = tuple(sorted(IMAGE_EXTS))

    def find_pairs(self, root: Path) -> list[Pair]:
        images_dir = find_dir(root, "images", depth=2)
        masks_dir = images_dir.parent / "masks"
        if not masks_dir.is_dir():
            raise DatasetError(f"{images_dir.parent}: has images/ but no masks/ folder")
        images, masks = image_files(images_dir, self.exts), image_files(masks_dir, self.exts)
        if not images and not masks:
            raise DatasetError(f"{images_dir} and {masks_dir} contain no image files")
        any_ext = ".<ext>"
        found = pair_by_stem(
            images, masks, mask_dir=masks_dir, image_dir=images_dir, mask_ext=any_ext, image_ext=any_ext
        )
        return [Pair(k, i, m) for k, i, m in found]


class Synthetic(Folder):
    """The embedded default dataset: `datasets.synthetic` output in the folder layout."""

    name = "synthetic"
    display_name = "Synthetic"
    layout = """\
<root>/                      written by `python -m datasets.synthetic --out <root> --n N --size S --seed 42`
  images/synth_<iiiii>.png   RGB
  masks/synth_<iiiii>.png    0/255"""
