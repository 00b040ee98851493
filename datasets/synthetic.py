"""Synthetic lesion-segmentation data: a seeded generator and its adapter.

Every image is one of five scenes modelled on the paper's targets, drawn with equal probability:

============  =====================================================  ==============================
scene         what is drawn (foreground = the mask)                   what it probes
============  =====================================================  ==============================
polyp         pink-red mucosa with vessels, endoscope vignette and   medium to large, smooth, fairly
              specular glints; 1-3 dome-shaded polyps, mostly paler  sharp boundary; highlights and
              (sometimes darker) than the mucosa                     vignette as distractors
skin          skin-coloured, finely textured background with hairs   large, irregular, fuzzy
              and sometimes a dermoscope ring; one (rarely two)      boundary, mottled inside,
              brown, mottled, irregular lesion                        hairs crossing it
tumour        three-channel MRI slice: dark field, bright skull,     small to medium, fuzzy boundary;
              folded grey matter, dark ventricles; 1-2 hyper-         a halo outside the mask, a few
              intense tumours, some ring-shaped, some with a halo    ring-shaped (dark core) tumours
gland         H&E stroma with fibre texture and scattered stromal    several elongated objects whose
              nuclei; 2-6 glands = a purple epithelial rim around    inside (white lumen) resembles
              a pale lumen (the whole gland is foreground)           neither rim nor background
nuclei        H&E background with cytoplasm smudges; 6-25 small      many small objects, touching,
              dark-purple nuclei, partly in clusters                 sharp boundaries
============  =====================================================  ==============================

Objects range from about 0.4% (one nucleus) to about 50% (a skin lesion) of the image; an image holds
1 to about 25 of them (40% of the images hold several). On top, every image gets a random gain, offset,
gamma and colour balance, sensor noise and sometimes defocus blur (intensity variation between
images). No single grey threshold segments the set (the best one reaches a mean Dice of about 0.45):
the cue differs by scene (darker, brighter, paler, purple, a rim around a white lumen).

Lengths are fractions of the image side (blur widths are given for 96 pixels and scale with it), so a
set looks the same at any `size`; the default set is drawn at 96 and downsampled by `pipeline.prepare`
(area interpolation), which keeps anti-aliased boundaries. Drawing is vectorised numpy/OpenCV: about
2 ms per 96-pixel pair.

Pair i depends only on (seed, i), so the first k pairs of a larger set equal a set of size k.

**Domains.** ``base`` is the set above. ``shifted`` is a second acquisition of the same kind of scenes, for
testing whether a model trained on ``base`` generalises (cross-dataset transfer, as Kvasir-SEG -> CVC-ClinicDB
or ISIC2016 -> PH2): after drawing, every image goes through another "camera and stain" with its own random
stream (so a pair's scene and mask are those of ``base`` for the same seed and index):

- colour: the chroma is rotated by 25-45 degrees about the grey axis (reds turn towards yellow, purples
  towards pink; brightness kept), then each channel gets its own gain (0.85-1.15);
- contrast: pulled towards the image's mean to 45-65% of its spread, plus a haze of +10 to +30 grey levels;
- noise: colour grain of 10-16 grey levels (Gaussian noise per channel, blurred over a pixel at 96 px so
  that about 8-10 levels survive the area downsampling to 32 px; the first domain's sensor noise is 1.5-5
  levels before it), plus an uneven illumination of +-8-20% varying over the image.

The labels are those of ``base``: only the appearance changes. Ids are ``synth_<i>`` (base) and
``shift_<i>`` (shifted).

CLI: ``python -m datasets.synthetic --out DIR --n 1000 --size 224 --seed 42 [--domain shifted]`` writes the
`folder` layout (`DIR/images/synth_<i>.png`, `DIR/masks/synth_<i>.png`, masks 0/255).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from core.fsutil import atomic_dir

SCENES = ("polyp", "skin", "tumour", "gland", "nuclei")
DOMAINS = ("base", "shifted")
ID_PREFIX = {"base": "synth", "shifted": "shift"}
_DOMAIN_STREAM = 1  # the shifted domain's random stream: (seed, index, 1); the scene's is (seed, index)

_F = np.float32


def _noise(rng: np.random.Generator, size: int, cells: int, channels: int = 1) -> np.ndarray:
    """Zero-mean noise of about unit amplitude varying over `cells` cells across the image (H x W x C)."""
    cells = max(1, min(int(cells), size))
    g = rng.standard_normal((cells + 1, cells + 1, channels)).astype(_F)
    return cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC).reshape(size, size, channels)


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(a, (0, 0), max(float(sigma), 0.3))


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.arange(size, dtype=_F)
    return r[:, None], r[None, :]


def _shape(
    rng: np.random.Generator,
    size: int,
    radius: float,
    centre: tuple[float, float],
    *,
    irregular: float = 0.3,
    stretch: tuple[float, float] = (0.6, 1.0),
    rough: float = 0.05,
) -> np.ndarray:
    """Boolean mask of one irregular blob: random radial harmonics, anisotropy, rough boundary."""
    cy, cx = centre
    ks = np.arange(2, 8)
    amp = rng.uniform(0, irregular, ks.size) / ks
    phase = rng.uniform(0, 2 * np.pi, ks.size)
    elong = rng.uniform(*stretch)
    tilt = rng.uniform(0, np.pi)
    half = int(radius * (1 + amp.sum() + rough) / elong) + 2
    y0, y1 = max(0, int(cy) - half), min(size, int(cy) + half + 1)
    x0, x1 = max(0, int(cx) - half), min(size, int(cx) + half + 1)
    mask = np.zeros((size, size), bool)
    if y1 <= y0 or x1 <= x0:
        return mask
    dy = np.arange(y0, y1, dtype=_F)[:, None] - _F(cy)
    dx = np.arange(x0, x1, dtype=_F)[None, :] - _F(cx)
    c, s = np.cos(tilt), np.sin(tilt)
    u, v = (c * dx + s * dy) * elong, -s * dx + c * dy
    table = np.linspace(-np.pi, np.pi, 361, dtype=_F)  # radius as a function of angle, looked up per pixel
    profile = radius * (1 + (amp[:, None] * np.cos(ks[:, None] * table + phase[:, None])).sum(0))
    theta = np.arctan2(v, u)
    r = profile[np.rint((theta + np.pi) * (360 / (2 * np.pi))).astype(np.int32)]
    h, w = y1 - y0, x1 - x0
    wobble = _noise(rng, max(h, w), 5)[:h, :w, 0]
    inside = np.hypot(u, v) / r + rough * wobble < 1.0
    iy, ix = int(np.clip(cy, y0, y1 - 1)), int(np.clip(cx, x0, x1 - 1))
    inside[iy - y0, ix - x0] = True  # never empty
    mask[y0:y1, x0:x1] = inside
    return mask


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _curves(
    rng: np.random.Generator, size: int, count: int, length: float, width: int, bend: float = 0.25
) -> np.ndarray:
    """Anti-aliased smooth curves (folds, hairs) as a float layer in [0, 1]: walks of 24 steps whose
    heading turns by about `bend` radians per step."""
    layer = np.zeros((size, size), _F)
    for _ in range(count):
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, bend, 24))
        steps = (length / 24) * np.stack([np.sin(heading), np.cos(heading)], 1)
        pts = np.cumsum(steps, axis=0) + rng.uniform(0, size, 2)
        cv2.polylines(layer, [np.rint(pts[:, ::-1] * 4).astype(np.int32)], False, 1.0, max(1, width), cv2.LINE_AA, 2)
    return layer


def _dots(rng: np.random.Generator, size: int, count: int, rmax: float) -> np.ndarray:
    layer = np.zeros((size, size), _F)
    for (y, x), r in zip(rng.uniform(0, size, (count, 2)), rng.uniform(0.5, max(0.6, rmax), count), strict=True):
        cv2.circle(layer, (int(x), int(y)), max(1, int(round(r))), 1.0, -1, cv2.LINE_AA)
    return layer


def _he_background(rng: np.random.Generator, size: int, px: float) -> np.ndarray:
    """H&E-stained stroma: pink eosin with fibre texture and scattered small purple stromal nuclei."""
    base = rng.uniform([205, 125, 170], [245, 180, 220]).astype(_F)
    img = base * (1 + 0.06 * _noise(rng, size, 3))
    fibres = cv2.resize(rng.standard_normal((size // 2 + 1, max(2, size // 12))).astype(_F), (size, size))
    fibres = cv2.warpAffine(
        fibres,
        cv2.getRotationMatrix2D((size / 2, size / 2), float(rng.uniform(0, 180)), 1.3),
        (size, size),
        borderMode=cv2.BORDER_REFLECT,
    )
    img += rng.uniform(5, 12) * fibres[..., None] * _F([0.6, 1.0, 0.7])
    img += rng.uniform(3, 7) * _noise(rng, size, size // 3, 3)
    stromal = _blur(_dots(rng, size, int(rng.integers(8, 30) * (size / 96) ** 2) + 2, 1.2 * px), 0.5 * px)
    img -= stromal[..., None] * rng.uniform(40, 80) * _F([0.7, 1.0, 0.45])
    return img


def _polyp(rng: np.random.Generator, size: int, px: float) -> tuple[np.ndarray, np.ndarray]:
    base = rng.uniform([160, 65, 55], [225, 125, 105]).astype(_F)
    shade = 1 + rng.uniform(0.08, 0.18) * _noise(rng, size, 3)
    img = base * shade + rng.uniform(3, 7) * _noise(rng, size, size // 5, 3)
    folds = _blur(
        _curves(rng, size, int(rng.integers(2, 6)), size * rng.uniform(0.4, 0.9), int(rng.integers(1, 4) * px), 0.15),
        1.2 * px,
    )
    img -= folds[..., None] * rng.uniform(20, 45) * _F([0.8, 1.1, 1.1])
    mask = np.zeros((size, size), bool)
    yy, xx = _grid(size)
    for _ in range(rng.choice((1, 2, 3), p=(0.7, 0.22, 0.08))):
        radius = size * _log_uniform(rng, 0.1, 0.28)
        cy, cx = rng.uniform(0.15 * size, 0.85 * size, 2)
        blob = _shape(rng, size, radius, (cy, cx), irregular=0.15, stretch=(0.7, 1.0), rough=0.02)
        mask |= blob
        alpha = _blur(blob.astype(_F), rng.uniform(0.6, 1.6) * px)
        sign = 1.0 if rng.random() < 0.8 else -1.0  # most polyps are paler than the mucosa
        delta = sign * rng.uniform(70, 110) * rng.uniform([0.6, 0.9, 0.9], [1.0, 1.4, 1.4])
        light = rng.uniform(0, 2 * np.pi)  # dome shading: one side lit, the other in shadow
        dome = ((yy - cy) * np.sin(light) + (xx - cx) * np.cos(light)) / radius
        inner = delta.astype(_F) + rng.uniform(8, 18) * dome[..., None] + 6 * _noise(rng, size, size // 8, 3)
        img += alpha[..., None] * inner
    spots = np.zeros((size, size), _F)
    for _ in range(rng.integers(1, 7)):  # specular glints, on and off the polyps
        axes = tuple(max(1, int(a)) for a in rng.uniform(0.5, 2.5, 2) * px)
        centre = tuple(int(c) for c in rng.uniform(0, size, 2))
        cv2.ellipse(spots, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    img += _blur(spots, 0.8 * px)[..., None] * rng.uniform(60, 110)
    r2 = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / (size / 2) ** 2
    img *= np.clip(1 - rng.uniform(0.2, 0.6) * np.maximum(r2 - 0.4, 0), 0, 1)[..., None]  # endoscope vignette
    return img, mask


def _skin(rng: np.random.Generator, size: int, px: float) -> tuple[np.ndarray, np.ndarray]:
    base = rng.uniform([180, 130, 105], [240, 195, 170]).astype(_F)
    img = base * (1 + 0.07 * _noise(rng, size, 3)) + rng.uniform(3, 6) * _noise(rng, size, size // 3, 3)
    mask = np.zeros((size, size), bool)
    count = 1 if rng.random() < 0.85 else 2
    for k in range(count):
        radius = size * (_log_uniform(rng, 0.13, 0.34) if k == 0 else _log_uniform(rng, 0.05, 0.1))
        cy, cx = rng.uniform(0.3 * size, 0.7 * size, 2) if k == 0 else rng.uniform(0.1 * size, 0.9 * size, 2)
        blob = _shape(rng, size, radius, (cy, cx), irregular=0.4, stretch=(0.65, 1.0), rough=0.08)
        mask |= blob
        alpha = _blur(blob.astype(_F), rng.uniform(1.2, 4.0) * px)
        mottle = np.clip(1 + 0.3 * _noise(rng, size, max(3, size // 12))[..., 0], 0.55, 1.6)
        depth = rng.uniform(60, 110) * rng.uniform([0.7, 1.0, 1.0], [0.9, 1.2, 1.3])
        img -= (alpha * mottle)[..., None] * depth.astype(_F)
    hairs = _blur(
        _curves(rng, size, int(rng.integers(0, 7)), size * rng.uniform(0.4, 1.0), max(1, int(px)), 0.08), 0.5 * px
    )
    img -= hairs[..., None] * rng.uniform(60, 120) * _F([0.9, 1.0, 1.0])
    if rng.random() < 0.35:  # dermoscope ring: dark corners
        yy, xx = _grid(size)
        r = np.sqrt((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / (size / 2)
        img *= np.clip((rng.uniform(1.05, 1.3) - r) / 0.1, 0.05, 1)[..., None]
    return img, mask


def _tumour(rng: np.random.Generator, size: int, px: float) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = _grid(size)
    cy, cx = size * (0.5 + rng.uniform(-0.05, 0.05, 2))
    ay, ax = size * rng.uniform(0.38, 0.47, 2)
    ell = ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2
    head = _blur((ell < 1).astype(_F), 0.7 * px)
    brain = _blur((ell < 0.82).astype(_F), 0.7 * px)
    weights = rng.uniform([0.5, 0.7, 0.5], [0.9, 1.0, 1.0]).astype(_F)  # three sequences, differently weighted
    tissue = rng.uniform(70, 115) + rng.uniform(10, 22) * np.abs(_noise(rng, size, size // 7))[..., 0]
    img = (tissue * brain + rng.uniform(140, 210) * (head - brain))[..., None] * weights
    vent = _shape(rng, size, size * rng.uniform(0.05, 0.1), (cy, cx), irregular=0.4, stretch=(0.35, 0.6))
    img -= _blur(vent.astype(_F), 0.8 * px)[..., None] * rng.uniform(30, 60) * weights
    mask = np.zeros((size, size), bool)
    for _ in range(1 if rng.random() < 0.8 else 2):
        radius = size * _log_uniform(rng, 0.08, 0.22)
        t, rr = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.55)
        ty, tx = cy + ay * rr * np.sin(t), cx + ax * rr * np.cos(t)
        blob = _shape(rng, size, radius, (ty, tx), irregular=0.3, stretch=(0.65, 1.0), rough=0.06) & (ell < 0.8)
        mask |= blob
        alpha = _blur(blob.astype(_F), rng.uniform(1.0, 3.5) * px)
        bright = rng.uniform(100, 160) * rng.uniform([0.3, 0.8, 0.3], [1.0, 1.2, 1.1])
        inner = bright.astype(_F) * (1 + 0.2 * _noise(rng, size, max(3, size // 10)))
        if rng.random() < 0.15:  # necrotic core: a ring-enhancing tumour
            core = _blur((_shape(rng, size, 0.5 * radius, (ty, tx), irregular=0.2) & blob).astype(_F), 1.0 * px)
            inner = inner * (1 - 0.8 * core[..., None])
        img += alpha[..., None] * inner
        if rng.random() < 0.5:  # oedema halo, outside the mask
            halo = _blur(blob.astype(_F), radius * 0.5 + 2 * px) - alpha
            img += np.clip(halo, 0, None)[..., None] * rng.uniform(10, 25) * weights
    return img, mask


def _gland(rng: np.random.Generator, size: int, px: float) -> tuple[np.ndarray, np.ndarray]:
    img = _he_background(rng, size, px)
    mask = np.zeros((size, size), bool)
    rim = np.zeros((size, size), _F)
    lumen = np.zeros((size, size), _F)
    body = np.zeros((size, size), _F)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    for _ in range(rng.integers(2, 7)):
        radius = size * _log_uniform(rng, 0.07, 0.17)
        centre = rng.uniform(0.08 * size, 0.92 * size, 2)
        blob = _shape(rng, size, radius, centre, irregular=0.3, stretch=(0.4, 0.8), rough=0.04)
        mask |= blob
        body = np.maximum(body, blob.astype(_F))
        thick = max(1, int(round(radius * rng.uniform(0.2, 0.35))))
        inner = cv2.erode(blob.astype(np.uint8), kernel, iterations=thick).astype(_F)
        rim = np.maximum(rim, blob - inner)
        if rng.random() < 0.85:  # a lumen (solid glands have none)
            lumen = np.maximum(lumen, cv2.erode(inner.astype(np.uint8), kernel, iterations=max(1, thick // 2)))
    soft = rng.uniform(0.5, 1.1) * px
    purple = rng.uniform([55, 85, 25], [95, 130, 55]).astype(_F)  # haematoxylin: loses red and green
    chromatin = np.clip(1 + 0.4 * _noise(rng, size, max(3, size // 4))[..., 0], 0.3, 1.7)
    img -= (_blur(rim, soft) * chromatin)[..., None] * purple
    img -= _blur(body - rim, soft)[..., None] * rng.uniform(10, 25) * _F([0.5, 1.0, 0.3])  # cytoplasm
    img += _blur(lumen, soft)[..., None] * (rng.uniform([235, 225, 235], [255, 250, 255]).astype(_F) - img) * 0.85
    return img, mask


def _nuclei(rng: np.random.Generator, size: int, px: float) -> tuple[np.ndarray, np.ndarray]:
    img = _he_background(rng, size, px)
    smudges = _blur(_dots(rng, size, int(rng.integers(2, 6)), size * 0.08), size * 0.04)
    img -= smudges[..., None] * rng.uniform(15, 30) * _F([0.6, 1.0, 0.4])
    mask = np.zeros((size, size), bool)
    count = int(rng.integers(6, 26))
    clusters = rng.uniform(0.15 * size, 0.85 * size, (int(rng.integers(1, 4)), 2))
    for _ in range(count):
        radius = size * rng.uniform(0.04, 0.075)
        if rng.random() < 0.5:
            centre = clusters[rng.integers(len(clusters))] + rng.normal(0, size * 0.1, 2)
        else:
            centre = rng.uniform(0, size, 2)
        mask |= _shape(rng, size, radius, tuple(np.clip(centre, 1, size - 2)), irregular=0.15, rough=0.05)
    alpha = _blur(mask.astype(_F), rng.uniform(0.4, 0.9) * px)
    chromatin = np.clip(1 + 0.3 * _noise(rng, size, max(3, size // 5))[..., 0], 0.4, 1.6)
    dark = rng.uniform([110, 125, 45], [160, 165, 85]).astype(_F)
    img -= (alpha * chromatin)[..., None] * dark
    return img, mask


_DRAW = {"polyp": _polyp, "skin": _skin, "tumour": _tumour, "gland": _gland, "nuclei": _nuclei}


def _shift_domain(rng: np.random.Generator, img: np.ndarray, px: float) -> np.ndarray:
    """The ``shifted`` domain's acquisition (module docstring) applied to a float RGB image in [0, 255]."""
    size = img.shape[0]
    grey = img.mean(axis=2, keepdims=True)
    chroma = img - grey
    angle = np.deg2rad(rng.uniform(25, 45))
    axis = np.full(3, 1 / np.sqrt(3), dtype=_F)  # Rodrigues rotation about the grey axis keeps the grey level
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]], dtype=_F)
    rot = np.eye(3, dtype=_F) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)
    img = grey + chroma @ rot.T.astype(_F)
    img = img * rng.uniform(0.85, 1.15, 3).astype(_F)
    mean = img.mean(axis=(0, 1), keepdims=True)
    img = mean + rng.uniform(0.45, 0.65) * (img - mean) + rng.uniform(10, 30)
    img = img * (1 + rng.uniform(0.08, 0.2) * _noise(rng, size, 2))
    grain = _blur(rng.standard_normal((size, size, 3), dtype=_F), px)
    grain /= max(float(grain.std()), 1e-6)
    return img + rng.uniform(10, 16) * grain


def make_pair(
    seed: int, index: int, size: int = 224, scene: str | None = None, domain: str = "base"
) -> tuple[np.ndarray, np.ndarray]:
    """Pair `index` of the set with `seed`: (RGB uint8 size x size x 3, mask uint8 0/255 size x size).

    `scene` forces one of `SCENES` (for inspection); by default it is drawn from (seed, index). `domain` is
    one of `DOMAINS`: ``shifted`` restyles the ``base`` pair (same mask; see the module docstring).
    """
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; known: {', '.join(DOMAINS)}")
    rng = np.random.default_rng([seed, index])
    drawn = SCENES[int(rng.integers(len(SCENES)))]
    px = size / 96  # lengths below are given for a 96-pixel image
    img, mask = _DRAW[scene or drawn](rng, size, px)
    # intensity variation between images: gain, offset, gamma, colour balance, defocus, sensor noise
    img = np.clip(img, 0, 255) * (rng.uniform(0.8, 1.15) * rng.uniform(0.92, 1.08, 3)).astype(_F)
    img = 255 * (np.clip(img + rng.uniform(-15, 15), 0, 255) / 255) ** _F(rng.uniform(0.8, 1.25))
    if rng.random() < 0.3:
        img = _blur(img, rng.uniform(0.5, 1.0) * px)
    img += rng.uniform(1.5, 5) * rng.standard_normal((size, size, 1), dtype=_F)
    if domain == "shifted":
        img = _shift_domain(np.random.default_rng([seed, index, _DOMAIN_STREAM]), np.clip(img, 0, 255), px)
    img += 0.5
    return np.clip(img, 0, 255, out=img).astype(np.uint8), mask.astype(np.uint8) * 255


def pair_id(index: int, domain: str = "base") -> str:
    return f"{ID_PREFIX[domain]}_{index:05d}"


def generate(
    out: str | Path, n: int = 1000, size: int = 224, seed: int = 42, workers: int = 2, domain: str = "base"
) -> Path:
    """Write `n` pairs of `domain` in the `folder` layout to `out` (replacing it atomically); returns `out`."""
    if n < 1 or size < 8:
        raise ValueError("need n >= 1 and size >= 8")
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; known: {', '.join(DOMAINS)}")

    def write(i: int, root: Path) -> None:
        img, mask = make_pair(seed, i, size, domain=domain)
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
        for sub, arr in (("images", cv2.cvtColor(img, cv2.COLOR_RGB2BGR)), ("masks", mask)):
            ok, buf = cv2.imencode(".png", arr, params)
            if not ok:
                raise OSError(f"PNG encoding failed for pair {i}")
            (root / sub / f"{pair_id(i, domain)}.png").write_bytes(buf.tobytes())

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
    ap.add_argument("--domain", choices=DOMAINS, default="base", help="appearance (default base; see above)")
    a = ap.parse_args(argv)
    if a.n < 1 or a.size < 16:
        ap.error(f"--n must be >= 1 and --size >= 16 (got --n {a.n}, --size {a.size})")
    generate(a.out, a.n, a.size, a.seed, a.workers, a.domain)
    print(f"wrote {a.n} pairs of {a.size}x{a.size} ({a.domain} domain) to {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from core.cli import run

    raise SystemExit(run(main))
