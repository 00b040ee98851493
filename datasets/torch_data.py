"""Training-time data path: a torch Dataset over prepared arrays, the augmentation, worker seeding.

Augmentation keys (`augment:` in params.yaml; any key left out takes the default in `AUGMENT_DEFAULTS`):
    crop_scale [0.5, 1.0]   RandomResizedCrop area range (crop to the training size, p 1)
    crop_ratio [0.75, 1.333] RandomResizedCrop aspect-ratio range
    hflip_p 0.5, vflip_p 0.5  horizontal / vertical flip probabilities
    rotate_limit 15, rotate_p 0.6  rotation within +-limit degrees (zero fill outside)
    elastic_p 0.3, elastic_alpha 300, elastic_sigma 10  elastic deformation; albumentations 2 normalises
        the noise field, so alpha 300 / sigma 10 moves pixels by about 2.4 px (mean) at 224
    elastic_reference_size 224  the image side that alpha and sigma (pixel values) are meant for; at
        another training size s they become sigma * s/224 and alpha * (s/224)**2, which keeps the
        displacement about 1% of the side (unscaled, 32-pixel images would move by 19% of the side)
    brightness_limit 0.2, contrast_limit 0.2, brightness_contrast_p 0.2
    mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225]  normalisation (ImageNet)
Evaluation applies only a resize to `size` (a no-op on arrays prepared at that size) and normalisation.

Reproducibility. albumentations 2 ignores the global numpy/random state: each Compose draws from its
own generators. Two pitfalls follow, both handled here:
1. `A.Compose(..., seed=s)` seeds every child transform with the same `s`, giving each child an
   identical random stream, so e.g. HorizontalFlip and VerticalFlip with equal p always fire
   together. `seed_transform` instead gives the whole pipeline one shared pair of generators.
2. DataLoader workers receive copies of the dataset, so every worker (and, without
   persistent_workers, every epoch) would replay the same augmentation sequence. `seed_worker`,
   used as `worker_init_fn`, reseeds numpy, random and the dataset's transform from
   `torch.initial_seed()`, which differs per worker and epoch and is fixed by the DataLoader's seeded
   `generator`. With num_workers=0 the sequence is fixed by `build_transforms(..., seed=)`.

The trainer goes one step further (`AugmentationSeeds`): its sampler yields `(index, (seed, epoch))` and
the dataset draws each sample's augmentation from generators seeded by (seed, epoch, index). The
augmented images then depend on nothing else -- not on the number of workers, on which worker loads a
sample, on persistent workers carrying state across epochs, or on where a resumed run restarted.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path

os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"  # before importing albumentations: no online version check

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import Dataset, Sampler, get_worker_info  # noqa: E402

from datasets.base import DatasetError

AUGMENT_DEFAULTS: dict = {
    "crop_scale": [0.5, 1.0],
    "crop_ratio": [0.75, 1.3333333333333333],
    "hflip_p": 0.5,
    "vflip_p": 0.5,
    "rotate_limit": 15,
    "rotate_p": 0.6,
    "elastic_p": 0.3,
    "elastic_alpha": 300.0,
    "elastic_sigma": 10.0,
    "elastic_reference_size": 224,
    "brightness_limit": 0.2,
    "contrast_limit": 0.2,
    "brightness_contrast_p": 0.2,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}


def seed_transform(transform: A.BaseCompose, seed: int) -> None:
    """Give a whole albumentations pipeline one shared, seeded pair of generators."""
    transform.set_random_state(np.random.default_rng(seed), random.Random(seed))


def sample_generators(seed: int, epoch: int, index: int) -> tuple[np.random.Generator, random.Random]:
    """Independent numpy and python generators for one sample of one epoch of a seeded run."""
    sequence = np.random.SeedSequence([seed % 2**64, epoch, index])
    return np.random.default_rng(sequence), random.Random(int(sequence.generate_state(1, np.uint64)[0]))


def build_transforms(aug: dict | None, size: int, train: bool, seed: int = 0) -> A.Compose:
    """The paper's training augmentation (train=True) or the evaluation transform, from `aug` keys."""
    unknown = set(aug or {}) - set(AUGMENT_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown augment keys {sorted(unknown)}; known: {sorted(AUGMENT_DEFAULTS)}")
    a = {**AUGMENT_DEFAULTS, **(aug or {})}
    norm = A.Normalize(mean=tuple(a["mean"]), std=tuple(a["std"]), max_pixel_value=255.0)
    if not train:
        resize = A.Resize(size, size, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST)
        ops = [resize, norm]
    else:
        # The displacement is about alpha / sigma pixels: keep it the same fraction of the side at any size
        # (albumentations needs sigma >= 1, reached below 23 pixels; alpha then follows sigma).
        scale = size / a["elastic_reference_size"]
        sigma = max(1.0, a["elastic_sigma"] * scale)
        alpha = a["elastic_alpha"] * scale * sigma / a["elastic_sigma"]
        ops = [
            A.RandomResizedCrop(size=(size, size), scale=tuple(a["crop_scale"]), ratio=tuple(a["crop_ratio"]), p=1.0),
            A.HorizontalFlip(p=a["hflip_p"]),
            A.VerticalFlip(p=a["vflip_p"]),
            A.Rotate(limit=a["rotate_limit"], border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=a["rotate_p"]),
            A.ElasticTransform(
                alpha=alpha,
                sigma=sigma,
                border_mode=cv2.BORDER_CONSTANT,
                p=a["elastic_p"],
            ),
            A.RandomBrightnessContrast(
                brightness_limit=a["brightness_limit"], contrast_limit=a["contrast_limit"], p=a["brightness_contrast_p"]
            ),
            norm,
        ]
    transform = A.Compose(ops)
    seed_transform(transform, seed)
    return transform


class SegmentationArrays(Dataset):
    """Rows `ids` of a prepared folder (images.npy, masks.npy, ids.json), read through mmap.

    Items are (image float32 3 x S x S, mask float32 1 x S x S in {0, 1}). With `transform=None` the
    image is scaled to [0, 1] without normalisation.
    """

    def __init__(self, prepared_dir: str | Path, ids: list[str], transform: A.BaseCompose | None = None):
        self.root = Path(prepared_dir)
        all_ids = json.loads((self.root / "ids.json").read_text(encoding="utf-8"))
        rows = {k: r for r, k in enumerate(all_ids)}
        missing = [k for k in ids if k not in rows]
        if missing:
            raise DatasetError(f"{self.root}: {len(missing)} id(s) not in ids.json, e.g. {missing[:5]}")
        self._ids = list(ids)
        self._rows = [rows[k] for k in ids]
        self.transform = transform
        self._images: np.ndarray | None = None
        self._masks: np.ndarray | None = None

    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._rows)

    def __getstate__(self) -> dict:
        # memmaps would be pickled as full arrays when workers are spawned; reopen them instead
        return {**self.__dict__, "_images": None, "_masks": None}

    def _open(self) -> None:
        self._images = np.load(self.root / "images.npy", mmap_mode="r")
        self._masks = np.load(self.root / "masks.npy", mmap_mode="r")

    def __getitem__(self, item: int | tuple[int, tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``dataset[i]``, or ``dataset[(i, (seed, epoch))]`` (from :class:`AugmentationSeeds`): the
        augmentation of that sample is then drawn from generators seeded by (seed, epoch, i)."""
        index, key = item if isinstance(item, tuple) else (item, None)
        if self._images is None:
            self._open()
        row = self._rows[index]
        image = np.array(self._images[row])
        mask = np.array(self._masks[row])
        if self.transform is not None and key is not None:
            self.transform.set_random_state(*sample_generators(key[0], key[1], index))
        if self.transform is not None:
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        else:
            image = image.astype(np.float32) / 255.0
        image = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))
        mask = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None]
        return image, mask


def _transforms_of(dataset: object, depth: int = 4) -> list[A.BaseCompose]:
    """Albumentations pipelines of a dataset, looking through Subset/ConcatDataset wrappers."""
    found = []
    t = getattr(dataset, "transform", None)
    if isinstance(t, A.BaseCompose):
        found.append(t)
    if depth > 0:
        inner = getattr(dataset, "dataset", None)
        for d in ([inner] if inner is not None else []) + list(getattr(dataset, "datasets", [])):
            found += _transforms_of(d, depth - 1)
    return found


def seed_worker(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: seed numpy, random and the dataset's augmentation per worker."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)  # noqa: NPY002 - seeds the legacy global state that other code may use
    random.seed(seed)
    info = get_worker_info()
    if info is not None:
        for i, t in enumerate(_transforms_of(info.dataset)):
            seed_transform(t, seed + i)


class AugmentationSeeds(Sampler):
    """Wrap an index sampler so that it yields ``(index, (seed, epoch))``: every sample's augmentation is
    then fixed by the run's seed, the epoch and the sample (see :meth:`SegmentationArrays.__getitem__`).

    ``set_epoch`` forwards to the wrapped sampler (a ``DistributedSampler`` reshuffles per epoch). The
    keys are made in the main process each time an epoch starts, so persistent workers see them too.
    """

    def __init__(self, sampler: Sampler, seed: int):
        self.sampler, self.seed, self.epoch = sampler, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[int, tuple[int, int]]]:
        key = (self.seed, self.epoch)
        return ((int(index), key) for index in self.sampler)
