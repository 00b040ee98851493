"""CVC-ClinicDB (Bernal et al., 2015): 612 colonoscopy frames, TIFF originals or the PNG copy."""

from __future__ import annotations

from pathlib import Path

from datasets.base import Adapter, DatasetError, Pair, image_files, listing, pair_by_stem

_TIF = (".tif", ".tiff")
_PNG = (".png",)


def _original_dirs(root: Path, depth: int = 3) -> list[Path]:
    found, level = [], [root]
    for _ in range(depth + 1):
        found += [d for d in level if d.name == "Original" and (d.parent / "Ground Truth").is_dir()]
        level = [c for d in level for c in sorted(d.iterdir()) if c.is_dir() and not c.name.startswith(".")]
    return found


class CVC(Adapter):
    name = "cvc"
    display_name = "CVC-ClinicDB"
    expected_pairs = 612
    layout = """\
CVC-ClinicDB/                (--raw may point here or to a folder containing it)
  Original/<N>.tif           N = 1..612, 384 x 288 RGB TIFF
  Ground Truth/<N>.tif       same names, 0/255 masks
or the PNG copy:
  PNG/Original/<N>.png  and  PNG/Ground Truth/<N>.png
(a TIF/Original, TIF/Ground Truth pair is accepted too; when both TIFF and PNG copies are
present the TIFF originals are used)"""

    def find_pairs(self, root: Path) -> list[Pair]:
        candidates = _original_dirs(root)
        if not candidates:
            raise DatasetError(f"{root}: no 'Original' folder with a sibling 'Ground Truth' folder found")
        tif = [d for d in candidates if image_files(d, _TIF)]
        png = [d for d in candidates if not image_files(d, _TIF) and image_files(d, _PNG)]
        chosen, exts = (tif, _TIF) if tif else (png, _PNG)
        if len(chosen) > 1:
            raise DatasetError(
                f"{root}: several CVC-ClinicDB copies found: {listing(chosen)}; pass one of them as --raw"
            )
        if not chosen:
            raise DatasetError(f"{listing(candidates)}: no .tif or .png files in 'Original'")
        images_dir = chosen[0]
        masks_dir = images_dir.parent / "Ground Truth"
        found = pair_by_stem(
            image_files(images_dir, exts), image_files(masks_dir, exts), mask_dir=masks_dir, image_dir=images_dir
        )
        return [Pair(k, i, m) for k, i, m in found]
