"""The synthetic generator: deterministic, varied like the paper's targets, in the folder layout."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from datasets.registry import get_adapter
from datasets.synthetic import SCENES, _blur, _shift_domain, generate, main, make_pair


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.png")):
        h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_deterministic_and_prefix_stable(tmp_path):
    generate(tmp_path / "a", n=6, size=48, seed=42)
    generate(tmp_path / "b", n=6, size=48, seed=42, workers=1)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    generate(tmp_path / "c", n=6, size=48, seed=43)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    generate(tmp_path / "d", n=4, size=48, seed=42)  # a smaller set is a prefix of a larger one
    for sub in ("images", "masks"):
        for p in (tmp_path / "d" / sub).iterdir():
            assert p.read_bytes() == (tmp_path / "a" / sub / p.name).read_bytes()
    for part in (0, 1):
        assert np.array_equal(make_pair(42, 3, 48)[part], make_pair(42, 3, 48)[part])


def test_folder_layout_and_replacement(tmp_path):
    assert main(["--out", str(tmp_path / "s"), "--n", "5", "--size", "32", "--seed", "1"]) == 0
    pairs = get_adapter("synthetic").pairs(tmp_path / "s")
    assert len(pairs) == 5
    names = sorted(p.name for p in (tmp_path / "s" / "images").iterdir())
    assert names == [f"synth_{i:05d}.png" for i in range(5)]
    img = cv2.imread(str(tmp_path / "s" / "images" / names[0]), cv2.IMREAD_UNCHANGED)
    mask = cv2.imread(str(tmp_path / "s" / "masks" / names[0]), cv2.IMREAD_UNCHANGED)
    assert img.shape == (32, 32, 3) and mask.shape == (32, 32) and mask.dtype == np.uint8
    generate(tmp_path / "s", n=3, size=32)  # a smaller set replaces the folder, no stale files
    assert len(list((tmp_path / "s" / "images").iterdir())) == 3


@pytest.mark.parametrize("size", [8, 16, 33, 64])
def test_every_scene_at_any_size(size):
    for scene in SCENES:
        img, mask = make_pair(7, 0, size, scene=scene)
        assert img.shape == (size, size, 3) and img.dtype == np.uint8
        assert mask.shape == (size, size) and set(np.unique(mask)) <= {0, 255} and mask.any()


def test_task_covers_the_papers_targets():
    """Objects from small to large, several per image, all five scenes, intensity variation, and a task
    that no global grey threshold solves (the cue differs by scene)."""
    size, n = 96, 80
    areas, counts, scenes, grays, fgs = [], [], set(), [], []
    for i in range(n):
        img, mask = make_pair(42, i, size)
        fg = mask > 0
        assert fg.any() and set(np.unique(mask)) <= {0, 255}
        k, _, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8))
        counts.append(k - 1)
        areas.extend(stats[1:, cv2.CC_STAT_AREA] / size**2)
        scenes.add(SCENES[int(np.random.default_rng([42, i]).integers(len(SCENES)))])
        grays.append(img.astype(np.float32).mean(2))
        fgs.append(fg)
    counts, grays, fgs = np.array(counts), np.stack(grays), np.stack(fgs)
    assert scenes == set(SCENES)
    assert min(areas) < 0.008 and max(areas) > 0.25  # a nucleus-sized object and a large lesion
    assert np.mean(counts > 1) > 0.3 and counts.max() >= 10  # several objects per image, up to many
    assert np.std(grays.mean((1, 2))) > 15  # images differ in brightness
    best = 0.0  # the best mean Dice of one grey threshold (either polarity) applied to every image
    for t in range(10, 250, 5):
        for pred in (grays < t, grays > t):
            dice = 2 * (pred & fgs).sum((1, 2)) / np.maximum(1, pred.sum((1, 2)) + fgs.sum((1, 2)))
            best = max(best, dice.mean())
    assert best < 0.6


def _chroma(img: np.ndarray) -> np.ndarray:
    f = img.astype(np.float64).reshape(-1, 3)
    return f.mean(0) - f.mean()


def test_shifted_domain_same_scenes_other_colour_and_contrast():
    """The second domain keeps every mask and changes the appearance: hue turned by 25-45 degrees about the grey
    axis, contrast lowered (statistics over 60 pairs)."""
    axis = np.ones(3) / np.sqrt(3)
    angles, contrast = [], []
    for i in range(60):
        base, mask = make_pair(42, i, 48)
        shifted, mask2 = make_pair(42, i, 48, domain="shifted")
        assert np.array_equal(mask, mask2)
        a, b = _chroma(base), _chroma(shifted)
        angles.append(np.degrees(np.arctan2(np.cross(a, b) @ axis, a @ b)))
        contrast.append(shifted.astype(np.float64).mean(2).std() / base.astype(np.float64).mean(2).std())
    assert 20 < np.median(angles) < 50  # measured 33
    assert np.median(contrast) < 0.85  # measured 0.70
    with pytest.raises(ValueError, match="unknown domain"):
        make_pair(42, 0, 48, domain="nope")


def test_shifted_domain_adds_grain_that_survives_downsampling():
    """On a flat image the shifted acquisition leaves 10-16 grey levels of grain at 96 px and, after the area
    downsampling to 32 px that prepare applies, still several levels (the first domain's noise: 1.5-5 at 96)."""
    flat = np.full((96, 96, 3), 128, np.float32)
    for seed in range(3):
        out = _shift_domain(np.random.default_rng(seed), flat, 1.0)
        grain = out - _blur(out, 4.0)  # without the slow illumination change
        small = cv2.resize(out, (32, 32), interpolation=cv2.INTER_AREA)
        assert 9 < grain.std() < 17 and (small - _blur(small, 4 / 3)).std() > 5


def test_shifted_domain_is_deterministic_for_a_seed(tmp_path):
    generate(tmp_path / "a", n=4, size=32, seed=5, domain="shifted")
    generate(tmp_path / "b", n=4, size=32, seed=5, domain="shifted", workers=1)
    generate(tmp_path / "c", n=4, size=32, seed=6, domain="shifted")
    generate(tmp_path / "base", n=4, size=32, seed=5)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")
    assert main(["--out", str(tmp_path / "d"), "--n", "4", "--size", "32", "--seed", "5", "--domain", "shifted"]) == 0
    assert _digest(tmp_path / "d") == _digest(tmp_path / "a")
    pairs = get_adapter("shifted").pairs(tmp_path / "a")
    assert [p.id for p in pairs] == [f"shift_{i:05d}" for i in range(4)]
    for p in pairs:  # same masks as the first domain, other images
        twin = tmp_path / "base" / "images" / p.image.name.replace("shift_", "synth_")
        assert p.mask.read_bytes() == (twin.parent.parent / "masks" / twin.name).read_bytes()
        assert p.image.read_bytes() != twin.read_bytes()
