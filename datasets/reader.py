"""Robust decoding of the image and mask files the public datasets ship.

Each file is read from disk once (`read_bytes`, which also gives its sha256) and decoded once from
memory. Decoders are tried in order: TIFF data (recognised by its header, not by the file name)
goes to tifffile, then Pillow, then OpenCV; anything else to Pillow, then OpenCV. A decoder that
reports a truncated file ends the chain: the file is broken, not merely unusual. When no decoder
succeeds, `DatasetError` names the file and each decoder's complaint.

Conversions (documented rules):
- images come out H x W x 3 uint8 RGB: grayscale is replicated to three channels, palette images
  are expanded through their palette, alpha is dropped, BGR from OpenCV is swapped to RGB; the first
  page/frame of multi-page files is used.
- bit depth (`to_uint8`): bool -> 0/255; integer data whose maximum exceeds 255 (16-bit, 12-bit in
  16-bit) is scaled linearly by 255 / (image maximum); integer data within 0..255 is kept; float data
  with maximum <= 1 is multiplied by 255, otherwise clipped to 0..255.
- masks come out H x W uint8 in {0, 1} by ONE rule (`binarize`, texts in `MASK_RULES`). Colour masks are
  first reduced to the maximum over their colour channels (alpha dropped). The adapter's `mask_kind`
  chooses the rule family, the values found in each file the branch:
  * kind "label" (instance annotations, GlaS): foreground where the label > 0             [label>0]
  * kinds "binary" and "auto":
    1. at most two distinct values -- 0/1, 0/255, label-valued 0/2 or 0/100, 16-bit 0/65535, bool,
       float 0.0/1.0: the higher value is foreground (a file with a single value is all background
       when that value is 0, all foreground otherwise)                                    [two-level]
    2. more values (JPEG noise around 0 and 255, soft masks): converted to 8 bits as above and
       foreground where >= 128                                                            [threshold128]
    3. kind "auto" only (a user's folder): more than two integer values, all below 128 (instance or
       class labels 0, 1, 2, ...): foreground where > 0                                   [label>0]
  `binarize_with_rule` also returns the bracketed name of the branch taken (prepare counts them).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image

from datasets.base import DatasetError

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def read_bytes(path: str | Path) -> tuple[bytes, str]:
    """The file's bytes and their sha256 hex digest."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read file ({e.strerror or e})") from e
    if not data:
        raise DatasetError(f"{path}: file is empty")
    return data, hashlib.sha256(data).hexdigest()


def _tifffile(data: bytes, labels: bool) -> np.ndarray:
    with tifffile.TiffFile(io.BytesIO(data)) as tf:
        page = tf.pages.first
        arr = page.asarray()
        photometric = int(page.photometric)
        if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and arr.ndim == 3:
            arr = np.moveaxis(arr, 0, -1)
        if photometric == tifffile.PHOTOMETRIC.PALETTE and not labels:
            cmap = page.colormap
            cmap = (cmap >> 8 if cmap.max() > 255 else cmap).astype(np.uint8)
            arr = cmap.T[arr]
        elif photometric == tifffile.PHOTOMETRIC.MINISWHITE:
            if arr.dtype == bool:
                arr = ~arr
            else:
                arr = ((1 << page.bitspersample) - 1 if arr.dtype.kind in "ui" else arr.max()) - arr
        elif photometric not in (
            tifffile.PHOTOMETRIC.MINISBLACK,
            tifffile.PHOTOMETRIC.RGB,
            tifffile.PHOTOMETRIC.PALETTE,
            tifffile.PHOTOMETRIC.YCBCR,
        ):
            raise ValueError(f"photometric interpretation {photometric} not handled here")
    return arr


def _pillow(data: bytes, labels: bool) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        mode = im.mode
        if mode in ("P", "PA"):
            if labels:
                return np.asarray(im.convert("P") if mode == "PA" else im)
            return np.asarray(im.convert("RGB"))
        if mode in ("1", "L", "LA", "RGB", "RGBA", "I", "F") or mode.startswith("I;16"):
            arr = np.asarray(im)
            return arr.astype(arr.dtype.newbyteorder("=")) if arr.dtype.byteorder == ">" else arr
        return np.asarray(im.convert("RGB"))


def _opencv(data: bytes, labels: bool) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError("OpenCV could not decode it")
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    return arr


def decode(data: bytes, path: str | Path, labels: bool = False) -> np.ndarray:
    """Decode file bytes to an array (H x W or H x W x C, RGB order); `labels` keeps palette indices."""
    chain = [_tifffile, _pillow, _opencv] if data[:4] in _TIFF_MAGIC else [_pillow, _opencv]
    errors = []
    for fn in chain:
        try:
            arr = fn(data, labels)
        except Exception as e:  # noqa: BLE001 - any decoder failure means "try the next one"
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            errors.append(f"{fn.__name__.strip('_')}: {msg}")
            if "truncated" in msg.lower():
                break
            continue
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        if arr.ndim not in (2, 3) or arr.size == 0 or (arr.ndim == 3 and arr.shape[2] > 4):
            errors.append(f"{fn.__name__.strip('_')}: unexpected array shape {arr.shape}")
            continue
        return arr
    raise DatasetError(f"{path}: unreadable or corrupt image ({'; '.join(errors)})")


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Convert any bit depth to uint8 by the rule in the module docstring."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind in "ui":
        top = int(arr.max())
        if top <= 255:
            return np.clip(arr, 0, 255).astype(np.uint8)
        return np.clip(arr.astype(np.float64) * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
    arr = np.nan_to_num(arr.astype(np.float64))
    if arr.max() <= 1.0:
        arr = arr * 255.0
    return np.clip(arr + 0.5, 0, 255).astype(np.uint8)


def as_rgb(arr: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 RGB from a decoded array."""
    arr = to_uint8(arr)
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    if arr.shape[2] == 2:  # gray + alpha
        return np.repeat(arr[..., :1], 3, axis=2)
    return np.ascontiguousarray(arr[..., :3])


MASK_KINDS = ("binary", "label", "auto")
MASK_RULES = {
    "binary": "colour masks: maximum over channels; a mask with at most two values: the higher value is "
    "foreground (0/1, 0/255, 0/v); more values (JPEG noise): 8-bit value >= 128; nearest resize",
    "label": "instance labels: foreground where label > 0; nearest resize",
    "auto": "colour masks: maximum over channels; a mask with at most two values: the higher value is "
    "foreground (0/1, 0/255, 0/v); more values, all integers below 128: labels, foreground where > 0; "
    "otherwise 8-bit value >= 128; nearest resize",
}


def binarize_with_rule(arr: np.ndarray, kind: str = "binary") -> tuple[np.ndarray, str]:
    """H x W uint8 {0,1} mask from a decoded array and the name of the rule branch used (module docstring)."""
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; expected one of {MASK_KINDS}")
    if arr.ndim == 3:  # drop alpha, reduce colour to the maximum over channels
        arr = arr[..., :1] if arr.shape[2] == 2 else arr[..., :3]
        arr = arr.max(axis=2)
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr)
    if kind == "label":
        return (arr > 0).astype(np.uint8), "label>0"
    levels = np.unique(arr)
    if len(levels) <= 2:
        top = levels[-1]
        fg = arr == top if top > 0 else np.zeros(arr.shape, bool)
        return fg.astype(np.uint8), "two-level"
    if kind == "auto" and arr.dtype.kind in "ui" and levels[-1] < 128:
        return (arr > 0).astype(np.uint8), "label>0"
    return (to_uint8(arr) >= 128).astype(np.uint8), "threshold128"


def binarize(arr: np.ndarray, kind: str = "binary") -> np.ndarray:
    """H x W uint8 {0,1} mask from a decoded array, by the rule for `kind` (module docstring)."""
    return binarize_with_rule(arr, kind)[0]


def load_image(path: str | Path, data: bytes | None = None) -> np.ndarray:
    """Read an image file as H x W x 3 uint8 RGB."""
    if data is None:
        data, _ = read_bytes(path)
    return as_rgb(decode(data, path))


def load_mask(path: str | Path, kind: str = "binary", data: bytes | None = None) -> np.ndarray:
    """Read a mask file as H x W uint8 in {0, 1}."""
    if data is None:
        data, _ = read_bytes(path)
    return binarize(decode(data, path, labels=kind == "label"), kind)
