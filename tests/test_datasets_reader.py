"""The reader: colour order, bit depths, mask rules, tolerant TIFF decoding, loud failures."""

from __future__ import annotations

import io
import struct

import cv2
import numpy as np
import pytest
import tifffile
from fakedata import jpeg_bytes, save, save_tiff
from PIL import Image

from datasets.base import IMAGE_EXTS, DatasetError
from datasets.reader import (
    MASK_RULES,
    binarize,
    binarize_with_rule,
    decode,
    load_image,
    load_mask,
    read_bytes,
    to_uint8,
)

RGB = np.zeros((6, 8, 3), np.uint8)
RGB[..., 0], RGB[..., 1], RGB[..., 2] = 220, 110, 30


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".tiff", ".webp"])
def test_colour_images_come_out_rgb(tmp_path, ext):
    path = save(RGB, tmp_path / f"x{ext}", **({"lossless": True} if ext == ".webp" else {}))
    assert np.array_equal(load_image(path), RGB)


def test_jpeg_is_rgb_not_bgr(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(jpeg_bytes(RGB, 95))
    mean = load_image(path).reshape(-1, 3).mean(0)
    assert mean[0] > mean[1] > mean[2]


def test_tiff_falls_back_to_pillow_when_tifffile_fails(monkeypatch):
    import datasets.reader as reader

    b = io.BytesIO()
    tifffile.imwrite(b, RGB, photometric="rgb")
    assert np.array_equal(load_image("x.tif", b.getvalue()), RGB)

    def broken(data, labels):
        raise tifffile.TiffFileError("invalid IFD")

    monkeypatch.setattr(reader, "_tifffile", broken)
    assert np.array_equal(load_image("x.tif", b.getvalue()), RGB)


def test_opencv_fallback_swaps_bgr(monkeypatch):
    import datasets.reader as reader

    def broken(data, labels):
        raise ValueError("not supported")

    monkeypatch.setattr(reader, "_pillow", broken)
    ok, buf = cv2.imencode(".png", RGB[..., ::-1].copy())
    assert np.array_equal(load_image("x.png", buf.tobytes()), RGB)


def test_grayscale_and_16bit_images(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8)
    out = load_image(save(gray, tmp_path / "g.png"))
    assert out.shape == (6, 8, 3) and np.array_equal(out[..., 0], gray) and np.array_equal(out[..., 2], gray)
    deep = np.arange(48, dtype=np.uint16).reshape(6, 8) * 80  # 12-bit range, max 3760
    tifffile.imwrite(tmp_path / "d.tif", deep)
    out = load_image(tmp_path / "d.tif")
    assert out.dtype == np.uint8 and out.max() == 255 and out[0, 0, 0] == 0


def test_palette_and_rgba(tmp_path):
    im = Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    im.save(tmp_path / "p.png")
    assert np.array_equal(load_image(tmp_path / "p.png"), np.asarray(im.convert("RGB")))
    rgba = np.concatenate([RGB, np.zeros((6, 8, 1), np.uint8)], axis=2)
    assert np.array_equal(load_image(save(rgba, tmp_path / "a.png")), RGB)


def test_to_uint8_rules():
    assert to_uint8(np.array([0, 1], bool)).tolist() == [0, 255]
    assert to_uint8(np.array([0, 200], np.uint16)).tolist() == [0, 200]
    assert to_uint8(np.array([0, 1000, 2000], np.uint16)).tolist() == [0, 128, 255]
    assert to_uint8(np.array([0.0, 0.5, 1.0])).tolist() == [0, 128, 255]


def test_jpeg_mask_binarised_at_128(tmp_path):
    mask = np.zeros((32, 32), np.uint8)
    mask[4:20, 6:27] = 1
    rgb = np.repeat(mask[..., None] * 255, 3, axis=2)
    path = tmp_path / "m.jpg"
    path.write_bytes(jpeg_bytes(rgb, 60))
    raw = decode(path.read_bytes(), path)
    assert len(np.unique(raw)) > 2  # compression noise is really there
    out = load_mask(path)
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1}
    assert np.array_equal(out, mask)


def test_mask_kinds():
    labels = np.array([[0, 1, 2], [3, 0, 200]], np.uint8)
    assert binarize(labels, "label").tolist() == [[0, 1, 1], [1, 0, 1]]
    assert binarize(labels, "binary").tolist() == [[0, 0, 0], [0, 0, 1]]
    zero_one = np.array([[0, 1]], np.uint8)
    assert binarize(zero_one, "auto").tolist() == [[0, 1]]
    assert binarize(np.array([[0, 255, 127]], np.uint8), "auto").tolist() == [[0, 1, 0]]
    red = np.zeros((1, 2, 3), np.uint8)
    red[0, 1] = (255, 0, 0)  # luminance 76, but a clearly marked pixel
    assert binarize(red, "binary").tolist() == [[0, 1]]
    with pytest.raises(ValueError):
        binarize(labels, "nonsense")


def test_label_mask_keeps_palette_indices(tmp_path):
    labels = np.array([[0, 1], [2, 0]], np.uint8)
    im = Image.fromarray(labels, mode="L").convert("P")
    im.putpalette([0, 0, 0] * 256)  # every index black: only the indices carry the labels
    im.save(tmp_path / "anno.bmp")
    assert load_mask(tmp_path / "anno.bmp", "label").tolist() == [[0, 1], [1, 0]]


def _tiff_with_ifd_patch(img: np.ndarray, tag: int, **change) -> bytes:
    b = io.BytesIO()
    tifffile.imwrite(b, img, photometric="rgb", metadata=None)
    data = bytearray(b.getvalue())
    off = struct.unpack("<I", data[4:8])[0]
    for i in range(struct.unpack("<H", data[off : off + 2])[0]):
        p = off + 2 + 12 * i
        t, ty, c, v = struct.unpack("<HHII", data[p : p + 12])
        if t == tag:
            t, ty, v = change.get("new_tag", t), change.get("type", ty), change.get("value", v)
            data[p : p + 12] = struct.pack("<HHII", t, ty, c, v)
    return bytes(data)


@pytest.mark.parametrize(
    "tag,change",
    [
        (279, {"new_tag": 65000}),  # StripByteCounts missing
        (305, {"type": 99}),  # Software tag with an invalid type
        (282, {"value": 10**7}),  # XResolution pointing past the end of the file
    ],
)
def test_non_conforming_tiff_is_read(tag, change):
    img = (np.random.default_rng(0).random((12, 10, 3)) * 255).astype(np.uint8)
    assert np.array_equal(load_image("bad.tif", _tiff_with_ifd_patch(img, tag, **change)), img)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_tif_named_file_holding_other_format(fmt):
    b = io.BytesIO()
    Image.fromarray(RGB).save(b, format=fmt, **({"quality": 100} if fmt == "JPEG" else {}))
    out = load_image("0001.tif", b.getvalue())
    assert out.shape == RGB.shape and np.abs(out.astype(int) - RGB).max() <= 3


def test_tiff_16bit_mask_and_planar(tmp_path):
    mask = np.zeros((6, 6), np.uint16)
    mask[2:4] = 65535
    save_tiff(mask, tmp_path / "m.tif")
    assert load_mask(tmp_path / "m.tif").sum() == 12
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(RGB, -1, 0), photometric="rgb", planarconfig="separate")
    assert np.array_equal(load_image(tmp_path / "planar.tif"), RGB)


@pytest.mark.parametrize("fmt,ext", [("JPEG", ".jpg"), ("PNG", ".png"), ("BMP", ".bmp"), ("TIFF", ".tif")])
def test_truncated_file_fails_naming_it(tmp_path, fmt, ext):
    img = (np.random.default_rng(1).random((40, 40, 3)) * 255).astype(np.uint8)
    b = io.BytesIO()
    Image.fromarray(img).save(b, format=fmt)
    path = tmp_path / f"cut{ext}"
    path.write_bytes(b.getvalue()[: len(b.getvalue()) * 3 // 4])
    with pytest.raises(DatasetError, match=f"cut\\{ext}.*(unreadable|corrupt)"):
        load_image(path)


def test_garbage_and_empty_files(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"this is not an image")
    with pytest.raises(DatasetError, match="junk.png"):
        load_image(tmp_path / "junk.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match="empty.jpg: file is empty"):
        read_bytes(tmp_path / "empty.jpg")
    with pytest.raises(DatasetError, match="missing.png: cannot read"):
        read_bytes(tmp_path / "missing.png")


def test_read_bytes_checksum(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert read_bytes(tmp_path / "f")[1] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize("ext", sorted(IMAGE_EXTS))
def test_reader_decodes_every_listed_suffix(tmp_path, ext):
    """IMAGE_EXTS (what the adapters and predict accept) and the reader agree."""
    img = np.zeros((6, 8, 3), np.uint8)
    img[:, 4:] = (200, 40, 10)  # two colours: exact even through a GIF palette
    kw = {"lossless": True} if ext == ".webp" else {"quality": 100} if ext in (".jpg", ".jpeg") else {}
    out = load_image(save(img, tmp_path / f"x{ext}", **kw))
    assert out.shape == img.shape
    if ext in (".jpg", ".jpeg"):  # lossy at the colour edge: compare the outer columns
        out, img = out[:, [0, -1]], img[:, [0, -1]]
    assert np.abs(out.astype(int) - img).max() <= (8 if ext in (".jpg", ".jpeg") else 0)


LESION = np.array([[0, 0, 1, 1], [0, 1, 1, 0]], np.uint8)


@pytest.mark.parametrize(
    "values,kind,rule",
    [
        (LESION, "binary", "two-level"),  # 0/1
        (LESION * 255, "binary", "two-level"),  # 0/255
        (LESION * 2, "binary", "two-level"),  # label-valued 0/2: was empty at >= 128
        (LESION * 100, "binary", "two-level"),  # 0/100: was empty at >= 128
        (LESION.astype(np.uint16) * 65535, "binary", "two-level"),
        (LESION.astype(bool), "binary", "two-level"),
        (LESION.astype(np.float32), "binary", "two-level"),
        (LESION * 205 + 50, "binary", "two-level"),  # two levels without 0: the higher one
        (LESION * 2, "auto", "two-level"),
        (LESION * 2 + (LESION * np.array([[0, 0, 1, 0], [0, 0, 0, 0]], np.uint8)), "auto", "label>0"),  # 0/2/3
        (LESION * 7, "label", "label>0"),
    ],
)
def test_one_mask_rule(values, kind, rule):
    mask, used = binarize_with_rule(values, kind)
    assert used == rule and mask.dtype == np.uint8 and np.array_equal(mask, LESION)


def test_mask_rule_edge_cases():
    assert binarize_with_rule(np.zeros((2, 2), np.uint8))[0].sum() == 0  # all background
    assert binarize_with_rule(np.full((2, 2), 255, np.uint8))[0].sum() == 4  # all foreground
    noisy = np.array([[0, 3, 250, 255], [130, 120, 1, 2]], np.uint8)  # greyscale with JPEG noise
    mask, rule = binarize_with_rule(noisy, "binary")
    assert rule == "threshold128" and mask.tolist() == [[0, 0, 1, 1], [1, 0, 0, 0]]
    labels = np.array([[0, 1, 2, 3]], np.uint8)  # instance ids in a "binary" dataset stay a greyscale read
    assert binarize_with_rule(labels, "binary")[0].sum() == 0 and binarize_with_rule(labels, "auto")[0].sum() == 3
    assert set(MASK_RULES) == {"binary", "label", "auto"}
