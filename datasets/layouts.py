"""Layouts shared by several adapters: ``images/`` and ``masks/`` folders paired by file stem."""

from __future__ import annotations

from pathlib import Path

from datasets.base import IMAGE_EXTS, Adapter, DatasetError, Pair, find_dir, image_files, pair_by_stem


class ImageMaskFolders(Adapter):
    """Pairs ``<root>/images/<id>.<ext>`` with ``<root>/masks/<id>.<ext>``; subclasses set the name, the layout
    text and, where the dataset fixes them, ``mask_kind`` and ``exts``."""

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
