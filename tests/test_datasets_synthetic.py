"""The synthetic generator: deterministic, non-trivial, in the folder layout."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from datasets import get_adapter
from datasets.synthetic import generate, main, make_pair


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.png")):
        h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_deterministic_and_prefix_stable(tmp_path):
    generate(tmp_path / "a", n=6, size=48, seed=42)
    generate(tmp_path / "b", n=6, size=48, seed=42)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    generate(tmp_path / "c", n=6, size=48, seed=43)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert np.array_equal(make_pair(42, 3, 48)[0], make_pair(42, 3, 48)[0])


def test_folder_layout_and_replacement(tmp_path):
    assert main(["--out", str(tmp_path / "s"), "--n", "5", "--size", "32", "--seed", "1"]) == 0
    assert len(get_adapter("synthetic").pairs(tmp_path / "s")) == 5
    generate(tmp_path / "s", n=3, size=32)  # a smaller set replaces the folder, no stale files
    assert len(list((tmp_path / "s" / "images").iterdir())) == 3


def test_task_is_not_trivial():
    sizes, counts, contrast = [], [], []
    for i in range(60):
        img, mask = make_pair(42, i, 96)
        fg = mask > 0
        assert fg.any() and set(np.unique(mask)) <= {0, 255}
        n, _ = cv2.connectedComponents(fg.astype(np.uint8))
        counts.append(n - 1)
        sizes.append(fg.mean())
        gray = img.astype(float).mean(2)
        contrast.append(abs(gray[fg].mean() - gray[~fg].mean()) / gray[~fg].std())
    assert max(counts) >= 3 and np.mean(np.array(counts) > 1) > 0.2  # several lesions in some images
    assert min(sizes) < 0.01 and max(sizes) > 0.1  # small and large lesions
    assert np.median(contrast) < 2.5  # low contrast: not separable by a global threshold
