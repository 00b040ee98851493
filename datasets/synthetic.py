"""Synthetic lesion-segmentation data: a seeded generator and its adapter.

Each image shows a shaded, textured tissue-like background with vessel-like curves and specular
highlights (not part of the mask) and one to four lesions. Lesions are irregular blobs (random
harmonics of the radius, anisotropic, with a rough boundary) whose radius is drawn log-uniformly
from 2.5% to 28% of the image side, so small lesions are common. Their contrast to the background
is moderate (about 20-85 grey levels, darker in most images, with their own texture) against a
background whose shading, vignetting and texture vary by a similar amount, their boundary is
blurred, and specular spots and vessel-like curves act as distractors, so the task is not solvable by
thresholding.

Pair i depends only on (seed, i), so the first k pairs of a larger set equal a set of size k.

CLI: ``python -m datasets.synthetic --out DIR --n 1000 --size 224 --seed 42`` writes the
`folder` layout (`DIR/images/synth_<i>.png`, `DIR/masks/synth_<i>.png`, masks 0/255).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from datasets.fsutil import atomic_dir

_LESIONS = (1, 2, 3, 4)
_LESION_P = (0.55, 0.25, 0.13, 0.07)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int = 1) -> np.ndarray:
    """Zero-mean noise of about unit amplitude varying over `cells` cells across the image."""
    g = rng.standard_normal((cells + 1, cells + 1, channels)).astype(np.float32)
    out = cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC)
    return out.reshape(size, size, channels)


def _blob(rng: np.random.Generator, size: int) -> np.ndarray:
    """Boolean mask of one irregular lesion."""
    r0 = size * float(np.exp(rng.uniform(np.log(0.025), np.log(0.28))))
    cy, cx = rng.uniform(0.05 * size, 0.95 * size, 2)
    ks = np.arange(2, 8)
    amp = rng.uniform(0, 0.35, ks.size) / ks
    phase = rng.uniform(0, 2 * np.pi, ks.size)
    stretch = rng.uniform(0.6, 1.0)
    tilt = rng.uniform(0, np.pi)
    half = int(r0 * (1 + amp.sum()) * 1.3 / stretch) + 3
    y0, y1 = max(0, int(cy) - half), min(size, int(cy) + half + 1)
    x0, x1 = max(0, int(cx) - half), min(size, int(cx) + half + 1)
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
    c, s = np.cos(tilt), np.sin(tilt)
    u, v = c * dx + s * dy, (-s * dx + c * dy) / stretch
    # the radius as a function of angle, tabulated once and looked up per pixel
    table = np.linspace(-np.pi, np.pi, 721, dtype=np.float32)
    profile = r0 * (1 + (amp[:, None] * np.cos(ks[:, None] * table + phase[:, None])).sum(0))
    theta = np.arctan2(v, u)
    radius = profile[((theta + np.pi) * (720 / (2 * np.pi))).astype(np.int32)]
    rho = np.hypot(u, v)
    rough = _smooth_noise(rng, max(y1 - y0, x1 - x0), 6)[: y1 - y0, : x1 - x0, 0]
    inside = rho / radius + 0.06 * rough < 1.0
    inside[int(cy) - y0, int(cx) - x0] = True
    mask = np.zeros((size, size), bool)
    mask[y0:y1, x0:x1] = inside
    return mask


def make_pair(seed: int, index: int, size: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """Pair `index` of the set with `seed`: (RGB uint8 size x size x 3, mask uint8 0/255 size x size)."""
    rng = np.random.default_rng([seed, index])
    base = rng.uniform([140, 70, 60], [230, 150, 140]).astype(np.float32)
    shade = 1 + rng.uniform(0.08, 0.2) * _smooth_noise(rng, size, 3)
    ramp = np.arange(size, dtype=np.float32) / size
    vy, vx = rng.uniform(0.2, 0.8, 2)
    vignette = 1 - rng.uniform(0, 0.4) * ((ramp[:, None] - vy) ** 2 + (ramp[None, :] - vx) ** 2)[..., None]
    texture = rng.uniform(4, 10) * _smooth_noise(rng, size, size // 6, 3)
    img = base * shade * vignette + texture

    for _ in range(rng.integers(0, 4)):  # vessel-like curves
        pts = np.cumsum(rng.normal(0, size / 10, (8, 2)), axis=0) + rng.uniform(0, size, 2)
        layer = np.zeros((size, size), np.float32)
        cv2.polylines(layer, [pts.astype(np.int32)], False, 1.0, int(rng.integers(1, 3)), cv2.LINE_AA)
        img -= cv2.GaussianBlur(layer, (0, 0), 1.0)[..., None] * rng.uniform(10, 30) * np.float32([0.4, 1, 1])

    mask = np.zeros((size, size), bool)
    for _ in range(rng.choice(_LESIONS, p=_LESION_P)):
        blob = _blob(rng, size)
        mask |= blob
        alpha = cv2.GaussianBlur(blob.astype(np.float32), (0, 0), rng.uniform(0.8, 3.5))
        sign = -1.0 if rng.random() < 0.8 else 1.0
        delta = sign * rng.uniform(35, 65) * rng.uniform([0.5, 0.8, 0.6], [1.0, 1.3, 1.2])
        inner = rng.uniform(6, 14) * _smooth_noise(rng, size, size // 8, 3)
        img += alpha[..., None] * (delta.astype(np.float32) + inner)

    for _ in range(rng.integers(0, 3)):  # specular highlights
        spot = np.zeros((size, size), np.float32)
        centre = tuple(int(c) for c in rng.uniform(0, size, 2))
        axes = tuple(int(a) for a in rng.uniform(1, size / 40 + 2, 2))
        cv2.ellipse(spot, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        img += cv2.GaussianBlur(spot, (0, 0), 1.2)[..., None] * rng.uniform(40, 90)

    img += rng.uniform(2, 5) * rng.standard_normal((size, size, 1), dtype=np.float32)
    img += 0.5
    return np.clip(img, 0, 255, out=img).astype(np.uint8), mask.astype(np.uint8) * 255


def pair_id(index: int) -> str:
    return f"synth_{index:05d}"


def generate(out: str | Path, n: int = 1000, size: int = 224, seed: int = 42, workers: int = 2) -> Path:
    """Write `n` pairs in the `folder` layout to `out` (replacing it atomically); returns `out`."""
    if n < 1 or size < 8:
        raise ValueError("need n >= 1 and size >= 8")

    def write(i: int, root: Path) -> None:
        img, mask = make_pair(seed, i, size)
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
        for sub, arr in (("images", cv2.cvtColor(img, cv2.COLOR_RGB2BGR)), ("masks", mask)):
            ok, buf = cv2.imencode(".png", arr, params)
            if not ok:
                raise OSError(f"PNG encoding failed for pair {i}")
            (root / sub / f"{pair_id(i)}.png").write_bytes(buf.tobytes())

    with atomic_dir(out) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        with ThreadPoolExecutor(max(1, workers)) as pool:
            list(pool.map(lambda i: write(i, tmp), range(n)))
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m datasets.synthetic", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path, help="output folder (replaced if it exists)")
    ap.add_argument("--n", type=int, default=1000, help="number of pairs (default 1000)")
    ap.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    ap.add_argument("--seed", type=int, default=42, help="seed (default 42)")
    ap.add_argument("--workers", type=int, default=2, help="writer threads (default 2)")
    a = ap.parse_args(argv)
    generate(a.out, a.n, a.size, a.seed, a.workers)
    print(f"wrote {a.n} pairs of {a.size}x{a.size} to {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
