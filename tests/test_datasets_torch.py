"""The training-time data path: tensors, augmentation, and reproducible seeded loaders."""

from __future__ import annotations

import json
import random

import albumentations as A
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from datasets.torch_data import (
    AUGMENT_DEFAULTS,
    SegmentationArrays,
    build_transforms,
    seed_transform,
    seed_worker,
)
from pipeline.prepare import prepare


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from datasets.synthetic import generate

    root = tmp_path_factory.mktemp("torchdata")
    generate(root / "raw", n=20, size=48, seed=3)
    prepare("synthetic", root / "raw", root / "prep", size=40, seed=42)
    return root / "prep"


def test_items_shapes_and_values(prepared):
    ids = json.loads((prepared / "split.json").read_text())["train"]
    ds = SegmentationArrays(prepared, ids, build_transforms({}, 32, train=True))
    assert ds.ids == ids and len(ds) == len(ids)
    image, mask = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, 32, 32)
    assert mask.dtype == torch.float32 and mask.shape == (1, 32, 32)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    raw = SegmentationArrays(prepared, ids[:2], None)[1]
    assert raw[0].shape == (3, 40, 40) and 0 <= raw[0].min() and raw[0].max() <= 1


def test_eval_transform_is_normalisation_only(prepared):
    ids = json.loads((prepared / "ids.json").read_text())
    images = np.load(prepared / "images.npy", mmap_mode="r")
    image, _ = SegmentationArrays(prepared, ids[:1], build_transforms({}, 40, train=False))[0]
    mean = np.array(AUGMENT_DEFAULTS["mean"], np.float32)
    std = np.array(AUGMENT_DEFAULTS["std"], np.float32)
    expected = (images[0].astype(np.float32) / 255 - mean) / std
    assert torch.allclose(image, torch.from_numpy(expected.transpose(2, 0, 1)), atol=1e-5)


def test_unknown_augment_key():
    with pytest.raises(ValueError, match="hflip"):
        build_transforms({"hflip": 0.5}, 32, train=True)


# Every random augmentation off: a test switches on the one it looks at.
NO_AUGMENTATION = {
    "hflip_p": 0.0,
    "vflip_p": 0.0,
    "rotate_p": 0,
    "elastic_p": 0,
    "brightness_contrast_p": 0,
    "crop_scale": [1.0, 1.0],
    "crop_ratio": [1.0, 1.0],
}


def test_augment_keys_drive_the_pipeline():
    t = build_transforms({**NO_AUGMENTATION, "hflip_p": 1.0}, 8, train=True)
    img = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    mask = np.zeros((8, 8), np.uint8)
    mask[:, :2] = 1
    out = t(image=img, mask=mask)
    assert out["mask"][:, -2:].all() and not out["mask"][:, :2].any()


def test_flips_are_independent():
    # A.Compose(seed=...) would give both flips the same stream, so they would always fire together
    t = A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)])
    seed_transform(t, 0)
    img = np.arange(4, dtype=np.uint8).reshape(2, 2)
    outcomes = set()
    for _ in range(40):
        o = t(image=img)["image"]
        outcomes.add((bool(o[0, 0] in (1, 3)), bool(o[0, 0] in (2, 3))))
    assert len(outcomes) == 4


def _run(prepared, workers, seed=42, epochs=2):
    ids = json.loads((prepared / "split.json").read_text())["train"]
    ds = SegmentationArrays(prepared, ids, build_transforms({}, 32, train=True, seed=seed))
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(ds, batch_size=4, shuffle=True, num_workers=workers, worker_init_fn=seed_worker, generator=g)
    return [batch for _ in range(epochs) for batch in loader]


@pytest.mark.parametrize("workers", [0, 2])
def test_seeded_loaders_are_reproducible(prepared, workers):
    a, b = _run(prepared, workers), _run(prepared, workers)
    assert len(a) == len(b) == 8
    for (ia, ma), (ib, mb) in zip(a, b, strict=True):
        assert torch.equal(ia, ib) and torch.equal(ma, mb)
    # the second epoch is augmented afresh, not a replay of the first
    assert not torch.equal(a[0][0], a[4][0]) or not torch.equal(a[1][0], a[5][0])
    c = _run(prepared, workers, seed=7)
    assert not all(torch.equal(x[0], y[0]) for x, y in zip(a, c, strict=True))


def test_seed_worker_seeds_global_generators():
    torch.manual_seed(123)
    seed_worker(0)
    x = np.random.random(), random.random()  # noqa: NPY002 - the legacy global state is what is tested
    torch.manual_seed(123)
    seed_worker(0)
    assert x == (np.random.random(), random.random())  # noqa: NPY002


def test_elastic_deformation_is_the_same_fraction_of_the_image_at_any_size():
    """alpha and sigma are pixels of a 224 image: unscaled, a 32-pixel image would move by ~19% of its side."""
    only_elastic = {**NO_AUGMENTATION, "elastic_p": 1.0, "mean": [0, 0, 0], "std": [1, 1, 1]}
    fractions = {}
    for size in (32, 224):
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        coords = np.stack([xx, yy, np.zeros_like(xx)], -1) / size  # position as a fraction of the side
        moved = []
        for seed in range(8):
            out = build_transforms(only_elastic, size, train=True, seed=seed)(image=coords * 255)["image"]
            inner = slice(size // 8, -(size // 8))  # away from the zero-filled border
            moved.append(np.hypot(out[..., 0] - coords[..., 0], out[..., 1] - coords[..., 1])[inner, inner].mean())
        fractions[size] = float(np.mean(moved))
    assert 0.003 < fractions[224] < 0.03  # about 1% of the side at the paper's size
    assert 0.6 < fractions[32] / fractions[224] < 1.6
