"""Shared fixtures: a tiny prepared dataset written directly in the prepared on-disk format."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

# The suite runs many small models: more threads than cores only adds contention. Under pytest-xdist
# (`make test` runs one worker per core) each worker and the processes it starts use one thread.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(min(2, torch.get_num_threads()))


def write_prepared(
    root: Path,
    n_train: int = 16,
    n_val: int = 4,
    n_test: int = 4,
    size: int = 32,
    seed: int = 0,
    empty_val: bool = False,
) -> Path:
    """A prepared dataset of discs on a noisy background: images.npy, masks.npy, ids.json, split.json."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val + n_test
    yy, xx = np.mgrid[:size, :size]
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.empty((n, size, size), np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(size * 0.25, size * 0.75, 2)
        r = rng.uniform(size * 0.1, size * 0.3)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        img = rng.normal(90, 20, (size, size, 3)) + mask[..., None] * np.array([70, 30, 10])
        images[i] = img.clip(0, 255).astype(np.uint8)
        masks[i] = mask
    ids = [f"img{i:03d}" for i in range(n)]
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "images.npy", images)
    np.save(root / "masks.npy", masks)
    (root / "ids.json").write_text(json.dumps(ids))
    split = {
        "train": ids[:n_train],
        "val": [] if empty_val else ids[n_train : n_train + n_val],
        "test": ids[n_train + n_val :],
    }
    if empty_val:
        split["train"] = ids[: n_train + n_val]
    (root / "split.json").write_text(json.dumps(split))
    (root / "manifest.json").write_text(json.dumps({"dataset": "tiny", "size": size}))
    return root


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory) -> Path:
    return write_prepared(tmp_path_factory.mktemp("prepared") / "tiny")


@pytest.fixture
def make_prepared():
    """The :func:`write_prepared` factory, for tests that need a variant."""
    return write_prepared
