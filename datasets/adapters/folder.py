"""A user's own data: `images/` and `masks/` folders paired by file stem."""

from __future__ import annotations

from datasets.layouts import ImageMaskFolders


class Folder(ImageMaskFolders):
    name = "folder"
    display_name = "Folder"
    layout = """\
<root>/                      (--raw may point here or to a folder containing it)
  images/<id>.<ext>          any of png, jpg, jpeg, bmp, tif, tiff, gif, webp (first frame)
  masks/<id>.<ext>           same stem <id>, any of those formats (may differ from the image's);
                             colour reduced to the max over channels, then: two values (0/1, 0/255,
                             0/v) -> the higher is foreground; integer labels below 128 (0, 1, 2, ...)
                             -> > 0; other greyscale (JPEG noise) -> >= 128"""
