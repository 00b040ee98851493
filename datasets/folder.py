"""A user's own data: `images/` and `masks/` folders paired by file stem."""

from __future__ import annotations

from pathlib import Path

from datasets.base import IMAGE_EXTS, Adapter, DatasetError, Pair, by_stem, find_dir, image_files, match


class Folder(Adapter):
    name = "folder"
    display_name = "Folder"
    layout = """\
<root>/                      (--raw may point here or to a folder containing it)
  images/<id>.<ext>          any of png, jpg, jpeg, bmp, tif, tiff, gif, webp (first frame)
  masks/<id>.<ext>           same stem <id>, any of those formats (may differ from the image's);
                             0/255 (>= 128 is foreground), 0/1, or colour (max over channels)"""
    mask_kind = "auto"
    exts: tuple[str, ...] = tuple(sorted(IMAGE_EXTS))

    def find_pairs(self, root: Path) -> list[Pair]:
        images_dir = find_dir(root, "images", depth=2)
        masks_dir = images_dir.parent / "masks"
        if not masks_dir.is_dir():
            raise DatasetError(f"{images_dir.parent}: has images/ but no masks/ folder")
        images = by_stem(image_files(images_dir, self.exts))
        masks = by_stem(image_files(masks_dir, self.exts))
        if not images and not masks:
            raise DatasetError(f"{images_dir} and {masks_dir} contain no image files")
        found = match(images, masks, lambda p: f"{masks_dir}/{p.stem}.<ext>", lambda p: f"{images_dir}/{p.stem}.<ext>")
        return [Pair(k, i, m) for k, i, m in found]


class Synthetic(Folder):
    """The embedded default dataset: `datasets.synthetic` output in the folder layout."""

    name = "synthetic"
    display_name = "Synthetic"
    layout = """\
<root>/                      written by `python -m datasets.synthetic --out <root> --n N --size S --seed 42`
  images/synth_<iiiii>.png   RGB
  masks/synth_<iiiii>.png    0/255"""
