"""The embedded default dataset: ``python -m datasets.synthetic`` output in the images/ + masks/ layout."""

from __future__ import annotations

from datasets.layouts import ImageMaskFolders


class Synthetic(ImageMaskFolders):
    name = "synthetic"
    display_name = "Synthetic"
    layout = """\
<root>/                      written by `python -m datasets.synthetic --out <root> --n N --size S --seed 42`
  images/synth_<iiiii>.png   RGB
  masks/synth_<iiiii>.png    0/255"""
