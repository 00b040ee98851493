"""Kvasir-SEG (Jha et al., 2020): 1000 polyp images with JPEG masks."""

from __future__ import annotations

from datasets.layouts import ImageMaskFolders


class Kvasir(ImageMaskFolders):
    name = "kvasir"
    display_name = "Kvasir-SEG"
    expected_pairs = 1000
    layout = """\
Kvasir-SEG/                  (--raw may point here or to a folder containing it)
  images/<id>.jpg            1000 RGB JPEG images of varying size
  masks/<id>.jpg             same file names; RGB JPEG masks, values near 0 and 255
  kavsir_bboxes.json         (ignored)"""
    mask_kind = "binary"
    exts = (".jpg", ".jpeg", ".png")
