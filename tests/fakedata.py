"""Tiny fixture trees in the real on-disk layouts of the seven datasets (names, formats, nesting).

Every generator writes under `root` and returns {id: (image RGB uint8, mask {0,1} uint8)} with the
arrays as written (for lossy JPEG images, the array before compression).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

Truth = dict[str, tuple[np.ndarray, np.ndarray]]


def pattern(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image with distinct channel levels (R > G > B) and a rectangular lesion mask."""
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 200, 120, 40
    img = (img.astype(int) + rng.integers(-10, 10, (h, w, 3))).clip(0, 255).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
    mask[y : y + h // 2, x : x + w // 2] = 1
    img[mask == 1] //= 2
    return img, mask


def save(arr: np.ndarray, path: Path, fmt: str | None = None, **kw) -> Path:
    """Write an array with Pillow (format from the suffix unless `fmt` is given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt, **kw)
    return path


def save_tiff(arr: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, arr, photometric="rgb" if arr.ndim == 3 else "minisblack", metadata=None)
    return path


def jpeg_bytes(arr: np.ndarray, quality: int = 75) -> bytes:
    b = io.BytesIO()
    Image.fromarray(arr).save(b, format="JPEG", quality=quality)
    return b.getvalue()


def make_kvasir(root: Path, n: int = 10, seed: int = 0) -> Truth:
    """Kvasir-SEG/images/<id>.jpg and masks/<id>.jpg (RGB JPEG masks)."""
    rng = np.random.default_rng(seed)
    base = root / "Kvasir-SEG"
    truth = {}
    for i in range(n):
        k = f"cju{i:04d}kwl35piu0993l0dewei2"
        img, mask = pattern(rng, 24 + i % 3, 32)
        save(img, base / "images" / f"{k}.jpg", quality=90)
        save(np.repeat(mask[..., None] * 255, 3, axis=2), base / "masks" / f"{k}.jpg", quality=75)
        truth[k] = (img, mask)
    (base / "kavsir_bboxes.json").write_text("{}")
    return truth


def make_cvc(root: Path, n: int = 8, seed: int = 0, png: bool = False) -> Truth:
    """CVC-ClinicDB/Original/N.tif and Ground Truth/N.tif (or PNG/Original/N.png ...)."""
    rng = np.random.default_rng(seed)
    base = root / "CVC-ClinicDB" / ("PNG" if png else "")
    truth = {}
    for i in range(1, n + 1):
        img, mask = pattern(rng, 18, 24)
        if png:
            save(img, base / "Original" / f"{i}.png")
            save(mask * 255, base / "Ground Truth" / f"{i}.png")
        else:
            save_tiff(img, base / "Original" / f"{i}.tif")
            save_tiff(mask * 255, base / "Ground Truth" / f"{i}.tif")
        truth[str(i)] = (img, mask)
    return truth


def make_brain(root: Path, patients: int = 3, slices: int = 5, seed: int = 0) -> Truth:
    """kaggle_3m/TCGA_<p>_<date>/TCGA_<p>_<date>_<k>.tif and ..._<k>_mask.tif; odd k have no tumour."""
    rng = np.random.default_rng(seed)
    base = root / "lgg-mri-segmentation" / "kaggle_3m"
    truth = {}
    for p in range(patients):
        case = f"TCGA_CS_{4941 + p}_1996090{p}"
        for k in range(1, slices + 1):
            img, mask = pattern(rng, 16, 16)
            if k % 2:
                mask[:] = 0
            save_tiff(img, base / case / f"{case}_{k}.tif")
            save_tiff(mask * 255, base / case / f"{case}_{k}_mask.tif")
            truth[f"{case}_{k}"] = (img, mask)
    (base / "data.csv").write_text("Patient,RNASeqCluster\n")
    (base / "README.md").write_text("LGG\n")
    return truth


def make_isic(root: Path, n_train: int = 6, n_test: int = 4, seed: int = 0) -> Truth:
    """ISBI2016_ISIC_Part1_{Training,Test}_{Data,GroundTruth}/ with ISIC_<id>.jpg, ..._Segmentation.png."""
    rng = np.random.default_rng(seed)
    truth = {}
    for part, count, start in (("Training", n_train, 0), ("Test", n_test, 9000)):
        for i in range(start, start + count):
            k = f"ISIC_{i:07d}"
            img, mask = pattern(rng, 20, 30)
            save(img, root / f"ISBI2016_ISIC_Part1_{part}_Data" / f"{k}.jpg", quality=95)
            save(mask * 255, root / f"ISBI2016_ISIC_Part1_{part}_GroundTruth" / f"{k}_Segmentation.png")
            truth[k] = (img, mask)
    return truth


def make_ph2(root: Path, n: int = 6, seed: int = 0, real_size: bool = False) -> Truth:
    """PH2Dataset/PH2 Dataset images/IMD<nnn>/... with RGB BMP images and RGB BMP masks; ``real_size``: images
    of the real dataset's sizes (761-769 x 553-577 px), for timing the pipeline on a PH2-shaped stand-in."""
    rng = np.random.default_rng(seed)
    base = root / "PH2Dataset" / "PH2 Dataset images"
    truth = {}
    for i in range(2, 2 + n):
        k = f"IMD{i:03d}"
        h, w = (int(rng.integers(553, 578)), int(rng.integers(761, 770))) if real_size else (14, 20)
        img, mask = pattern(rng, h, w)
        save(img, base / k / f"{k}_Dermoscopic_Image" / f"{k}.bmp")
        save(np.repeat(mask[..., None] * 255, 3, axis=2), base / k / f"{k}_lesion" / f"{k}_lesion.bmp")
        save(mask * 255, base / k / f"{k}_roi" / f"{k}_R1_Label4.bmp")
        truth[k] = (img, mask)
    (root / "PH2Dataset" / "PH2_dataset.txt").write_text("PH2\n")
    return truth


def make_glas(root: Path, counts: tuple[int, int, int] = (4, 3, 2), seed: int = 0) -> Truth:
    """Warwick QU Dataset (Released 2016_07_08)/train_<k>.bmp + train_<k>_anno.bmp (instance labels)."""
    rng = np.random.default_rng(seed)
    base = root / "Warwick QU Dataset (Released 2016_07_08)"
    truth = {}
    for prefix, count in zip(("train", "testA", "testB"), counts, strict=True):
        for k in range(1, count + 1):
            img, _ = pattern(rng, 16, 22)
            labels = np.zeros((16, 22), np.uint8)
            labels[1:6, 1:8] = 1
            labels[8:14, 10:20] = 2 + k  # instance ids, not 0/255
            labels[10:12, 2:4] = 7
            save(img, base / f"{prefix}_{k}.bmp")
            save(labels, base / f"{prefix}_{k}_anno.bmp")
            truth[f"{prefix}_{k}"] = (img, (labels > 0).astype(np.uint8))
    (base / "Grade.csv").write_text("name,grade\n")
    return truth


def make_tnbc(root: Path, slides: tuple[int, ...] = (1, 2, 3), per_slide: int = 3, seed: int = 0) -> Truth:
    """TNBC_NucleiSegmentation/Slide_<ss>/<ss>_<k>.png (RGBA) and GT_<ss>/<ss>_<k>.png."""
    rng = np.random.default_rng(seed)
    base = root / "TNBC_NucleiSegmentation"
    truth = {}
    for s in slides:
        for k in range(1, per_slide + 1):
            img, mask = pattern(rng, 16, 16)
            rgba = np.concatenate([img, np.full((16, 16, 1), 255, np.uint8)], axis=2)
            save(rgba, base / f"Slide_{s:02d}" / f"{s:02d}_{k}.png")
            save(mask * 255, base / f"GT_{s:02d}" / f"{s:02d}_{k}.png")
            truth[f"{s:02d}_{k}"] = (img, mask)
    return truth


def make_folder(root: Path, n: int = 6, seed: int = 0) -> Truth:
    """images/ + masks/ in mixed formats and mask conventions (0/255, 0/1, colour)."""
    rng = np.random.default_rng(seed)
    truth = {}
    for i in range(n):
        k = f"case{i}"
        img, mask = pattern(rng, 12, 12)
        ext = (".png", ".bmp", ".tif")[i % 3]
        save(img, root / "images" / f"{k}{ext}")
        kind = i % 3
        if kind == 0:
            save(mask * 255, root / "masks" / f"{k}.png")
        elif kind == 1:
            save(mask, root / "masks" / f"{k}.png")  # 0/1 values
        else:
            colour = np.zeros((12, 12, 3), np.uint8)
            colour[mask == 1] = (255, 0, 0)  # red lesion on black
            save(colour, root / "masks" / f"{k}.bmp")
        truth[k] = (img, mask)
    return truth


MAKERS = {
    "kvasir": make_kvasir,
    "cvc": make_cvc,
    "brain_mri": make_brain,
    "isic2016": make_isic,
    "ph2": make_ph2,
    "glas": make_glas,
    "tnbc": make_tnbc,
    "folder": make_folder,
}


def tiny_checkpoint(prepared: Path, out: Path, img_size: int = 32) -> Path:
    """``best.pt`` of a one-epoch run of a small DyGLNet on a prepared folder (the real training code)."""
    from engine.params import TrainConfig
    from pipeline.train import train

    cfg = TrainConfig(
        data=str(prepared),
        model="dyglnet",
        out=str(out),
        epochs=1,
        batch_size=8,
        img_size=img_size,
        num_workers=0,
        model_kwargs={"depths": [1, 1, 1]},
    )
    train(cfg)
    return out / "best.pt"


def tree_files(root: Path) -> dict[str, bytes]:
    """Every file under `root` by its "/"-separated relative path (sorted): an archive's members."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return path


def write_tar(path: Path, files: dict[str, bytes]) -> Path:
    import tarfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def write_rar(path: Path, files: dict[str, bytes]) -> Path:
    """A RAR 4 archive with stored (uncompressed) members, written by hand: no `rar` tool is free to install.

    Layout (RAR 1.5-4.x technote): marker block, main header, one file header + data per member, end
    block; each header's CRC is the low 16 bits of the CRC-32 of the header after its CRC field.
    """
    import struct
    import zlib

    def block(kind: int, flags: int, body: bytes) -> bytes:
        head = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head

    dos_time = (2020 - 1980) << 25 | 1 << 21 | 1 << 16
    out = b"Rar!\x1a\x07\x00" + block(0x73, 0, b"\0" * 6)
    for name, data in files.items():
        raw = name.replace("/", "\\").encode()  # as WinRAR writes it: backslashes, host OS 2 (Win32)
        # pack size, unpacked size, host OS, CRC-32, DOS time, version 2.9, method 0x30 (store), name size, attributes
        fields = struct.pack(
            "<LLBLLBBHL", len(data), len(data), 2, zlib.crc32(data), dos_time, 29, 0x30, len(raw), 0x20
        )
        out += block(0x74, 0x8000, fields + raw) + data  # 0x8000: a data area follows the header
    out += block(0x7B, 0x4000, b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out)
    return path
