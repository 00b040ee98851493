"""Resizing to the square training size, shared by prepare (datasets) and predict (new images)."""

from __future__ import annotations

import cv2
import numpy as np


def resize_image(img: np.ndarray, size: int) -> np.ndarray:
    """``size`` x ``size``: area interpolation when shrinking both sides, bilinear otherwise."""
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    interp = cv2.INTER_AREA if size <= h and size <= w else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """``size`` x ``size`` with pixel-centre aligned nearest neighbour (a binary mask stays binary)."""
    if mask.shape == (size, size):
        return mask
    return cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST_EXACT)
