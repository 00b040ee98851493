"""The synthetic set's second domain (``python -m datasets.synthetic --domain shifted``): the same kind of scenes
through another "camera and stain", a target for testing cross-dataset transfer from ``synthetic``."""

from __future__ import annotations

from datasets.layouts import ImageMaskFolders


class Shifted(ImageMaskFolders):
    name = "shifted"
    display_name = "Synthetic-shifted"
    layout = """\
<root>/                      written by `python -m datasets.synthetic --domain shifted --out <root>
                             --n N --size S --seed 43`
  images/shift_<iiiii>.png   RGB
  masks/shift_<iiiii>.png    0/255"""
