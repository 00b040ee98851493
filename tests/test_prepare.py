"""pipeline.prepare end to end on fixture trees: outputs, determinism, and every bad-input case."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from fakedata import MAKERS, jpeg_bytes, make_brain, make_folder, make_isic, make_kvasir, make_tnbc, save

import datasets.check as check
import datasets.reader as reader
import pipeline.prepare as prep
from core.cli import run
from datasets.base import DatasetError, DatasetWarning
from datasets.resize import resize_image
from datasets.splits import split_sizes

REPO = Path(__file__).resolve().parents[1]


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def _run(name, raw, out, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        return prep.prepare(name, raw, out, **{"size": 16, "seed": 42, **kw})


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_outputs(tmp_path, name):
    truth = MAKERS[name](tmp_path / "raw")
    m = _run(name, tmp_path / "raw", tmp_path / "out")
    out = tmp_path / "out"
    images, masks = np.load(out / "images.npy", mmap_mode="r"), np.load(out / "masks.npy", mmap_mode="r")
    ids = json.loads((out / "ids.json").read_text())
    split = json.loads((out / "split.json").read_text())
    kept = sorted(k for k, (_, mk) in truth.items() if mk.any() or name != "brain_mri")
    assert ids == kept
    assert images.shape == (len(ids), 16, 16, 3) and images.dtype == np.uint8
    assert masks.shape == (len(ids), 16, 16) and masks.dtype == np.uint8 and set(np.unique(masks)) <= {0, 1}
    assert sorted(split["train"] + split["val"] + split["test"]) == ids
    for row, k in enumerate(ids):
        expect = cv2.resize(truth[k][1], (16, 16), interpolation=cv2.INTER_NEAREST_EXACT)
        assert np.array_equal(masks[row], expect), k
    assert m["counts"]["kept"] == len(ids) and m["counts"]["pairs_found"] == len(truth)
    assert len(m["sources_sha256"]) == 2 * len(truth)
    some = next(iter(m["sources_sha256"]))
    assert m["sources_sha256"][some] == hashlib.sha256((tmp_path / "raw" / some).read_bytes()).hexdigest()
    assert (out / "groups.json").exists() == (name in ("brain_mri", "tnbc"))
    assert json.loads((out / "manifest.json").read_text()) == m
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_split_rules_per_dataset(tmp_path):
    make_isic(tmp_path / "isic", n_train=5, n_test=3)
    s = _run("isic2016", tmp_path / "isic", tmp_path / "o1")["counts"]
    assert (s["train"], s["val"], s["test"]) == (5, 0, 3)
    make_tnbc(tmp_path / "tnbc", slides=(1, 2), per_slide=5)
    s = _run("tnbc", tmp_path / "tnbc", tmp_path / "o2")["counts"]
    assert (s["train"], s["val"], s["test"]) == split_sizes(10, "4:1") == (8, 0, 2)
    make_kvasir(tmp_path / "kv", n=20)
    s = _run("kvasir", tmp_path / "kv", tmp_path / "o3")["counts"]
    assert (s["train"], s["val"], s["test"]) == (16, 2, 2)


def test_brain_drop_rule_groups_and_patient_split(tmp_path):
    make_brain(tmp_path / "raw", patients=6, slices=6)
    m = _run("brain_mri", tmp_path / "raw", tmp_path / "out")
    assert m["counts"]["dropped"] == 18 and m["counts"]["kept"] == 18 and m["drop_rule"]
    groups = json.loads((tmp_path / "out" / "groups.json").read_text())
    assert len(groups) == 18 and set(groups.values()) == {f"TCGA_CS_{4941 + p}" for p in range(6)}
    m = _run("brain_mri", tmp_path / "raw", tmp_path / "grouped", split_by_patient=True)
    split = json.loads((tmp_path / "grouped" / "split.json").read_text())
    parts = {part: {groups[i] for i in ids} for part, ids in split.items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not parts[a] & parts[b]
    assert m["split_rule"].startswith("grouped")
    with pytest.raises(DatasetError, match="no patient"):
        _run("kvasir", *_kv(tmp_path), split_by_patient=True)


def _kv(tmp_path, n=6):
    make_kvasir(tmp_path / "kv", n=n)
    return tmp_path / "kv", tmp_path / "kvout"


def test_byte_identical_and_location_independent(tmp_path):
    make_tnbc(tmp_path / "a" / "raw")
    _run("tnbc", tmp_path / "a" / "raw", tmp_path / "out1")
    _run("tnbc", tmp_path / "a" / "raw", tmp_path / "out2")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    _run("tnbc", tmp_path / "b" / "raw", tmp_path / "out3")
    assert _files(tmp_path / "out1") == _files(tmp_path / "out2") == _files(tmp_path / "out3")
    _run("tnbc", tmp_path / "a" / "raw", tmp_path / "out4", seed=1)
    assert _files(tmp_path / "out1")["split.json"] != _files(tmp_path / "out4")["split.json"]


def test_each_file_read_and_decoded_once(tmp_path, monkeypatch):
    raw, out = _kv(tmp_path, n=5)
    calls = {"read": [], "decode": []}
    real_read, real_decode = reader.read_bytes, reader.decode
    # prepare reads through datasets.check.load_pair, the code `python -m datasets check` runs
    monkeypatch.setattr(check, "read_bytes", lambda p: calls["read"].append(p) or real_read(p))
    monkeypatch.setattr(check, "decode", lambda d, p, **k: calls["decode"].append(p) or real_decode(d, p, **k))
    _run("kvasir", raw, out, workers=1)
    assert len(calls["read"]) == len(set(calls["read"])) == 10
    assert sorted(calls["decode"]) == sorted(calls["read"])


def test_resize_rules():
    img = (np.random.default_rng(0).random((40, 30, 3)) * 255).astype(np.uint8)
    area = cv2.resize(img, (16, 16), interpolation=cv2.INTER_AREA)
    assert np.array_equal(resize_image(img, 16), area)
    bilinear = cv2.resize(img, (64, 64), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(resize_image(img, 64), bilinear)
    mask = np.zeros((40, 30), np.uint8)
    mask[10:30, 5:20] = 1
    assert set(np.unique(prep.resize_mask(mask, 64))) == {0, 1}
    assert resize_image(img[:16, :16], 16) is not None


# --- the CLI and bad input -------------------------------------------------------------------------


def _cli(capsys, *args, params: Path | None = None):
    """`python -m pipeline.prepare ARGS` in-process (through core.cli.run) with an empty params file."""
    if params is None:
        params = Path(args[args.index("--out") + 1]).parent / "empty_params.yaml"
        params.write_text("")
    code = run(prep.main, [*map(str, args), "--params", str(params)])
    return code, capsys.readouterr().err


def test_cli_params_defaults_and_override(tmp_path, capsys):
    raw, out = _kv(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text("prepare:\n  size: 20\n  seed: 5\n")
    args = ["--dataset", "kvasir", "--raw", raw, "--out", out]
    assert _cli(capsys, *args, params=params)[0] == 0
    m = json.loads((out / "manifest.json").read_text())
    assert (m["size"], m["seed"]) == (20, 5)
    assert _cli(capsys, *args, "--size", "8", params=params)[0] == 0
    assert json.loads((out / "manifest.json").read_text())["size"] == 8
    code, _ = _cli(capsys, *args)
    assert code == 0 and json.loads((out / "manifest.json").read_text())["size"] == 224


@pytest.mark.parametrize(
    "text,message",
    [
        ("prepare:\n  size: '64'\n", "prepare.size: expected an integer, got '64'"),
        ("prepare:\n  sise: 64\n", "prepare.sise: unknown key"),
        ("prepare: [1, 2\n", "not valid YAML"),
    ],
)
def test_cli_bad_params_file(tmp_path, capsys, text, message):
    raw, out = _kv(tmp_path, n=2)
    params = tmp_path / "params.yaml"
    params.write_text(text)
    code, err = _cli(capsys, "--dataset", "kvasir", "--raw", raw, "--out", out, params=params)
    assert code == 2 and err.startswith(f"error: {params}: ") and message in err, err
    assert err.count("\n") == 1 and not out.exists()
    code, err = _cli(capsys, "--dataset", "kvasir", "--raw", raw, "--out", out, params=tmp_path / "none.yaml")
    assert code == 2 and "none.yaml: not found" in err


def test_cli_subprocess_error_exit_code(tmp_path):
    (tmp_path / "raw").mkdir()
    cmd = [
        sys.executable,
        "-m",
        "pipeline.prepare",
        "--dataset",
        "kvasir",
        "--raw",
        str(tmp_path / "raw"),
        "--out",
        str(tmp_path / "out"),
        "--size",
        "8",
    ]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "expected layout for --dataset kvasir" in r.stderr
    assert "masks/<id>.jpg" in r.stderr and not (tmp_path / "out").exists()


def _earlier_output(out: Path) -> dict[str, bytes]:
    """A stand-in for an earlier prepare output in `out` (which prepare may replace); returns its files."""
    out.mkdir(exist_ok=True)
    (out / "manifest.json").write_text(json.dumps({"format": 2, "dataset": "kvasir", "size": 8}))
    (out / "ids.json").write_text('["previous"]')
    return _files(out)


def _fails(capsys, tmp_path, name, raw, *patterns):
    out = tmp_path / "out"
    before = _earlier_output(out)
    code, err = _cli(capsys, "--dataset", name, "--raw", raw, "--out", out, "--size", "8")
    assert code == 2 and "\nerror: " in "\n" + err, err
    for pat in patterns:
        assert pat in err, (pat, err)
    assert "expected layout for --dataset" in err
    assert _files(out) == before  # existing --out untouched
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".out.")]  # no temp left
    return err


def test_missing_mask(tmp_path, capsys):
    raw, _ = _kv(tmp_path)
    victim = sorted((raw / "Kvasir-SEG" / "masks").iterdir())[2]
    victim.unlink()
    _fails(
        capsys,
        tmp_path,
        "kvasir",
        raw,
        "1 image(s) without a mask",
        f"images/{victim.name}",
        f"expected {victim.parent}/{victim.stem}.<ext>",
    )


def test_mask_without_image(tmp_path, capsys):
    raw, _ = _kv(tmp_path)
    victim = sorted((raw / "Kvasir-SEG" / "images").iterdir())[0]
    victim.unlink()
    _fails(capsys, tmp_path, "kvasir", raw, "1 mask(s) without an image", f"masks/{victim.name}")


def test_unreadable_and_truncated_image(tmp_path, capsys):
    raw, _ = _kv(tmp_path)
    victim = sorted((raw / "Kvasir-SEG" / "images").iterdir())[1]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    _fails(capsys, tmp_path, "kvasir", raw, str(victim), "unreadable or corrupt image", "truncated")
    victim.write_bytes(b"GIF89a but not really")
    _fails(capsys, tmp_path, "kvasir", raw, str(victim), "unreadable or corrupt image")


def test_size_mismatch(tmp_path, capsys):
    make_folder(tmp_path / "raw", n=3)
    save(np.zeros((5, 7), np.uint8), tmp_path / "raw" / "masks" / "case0.png")
    _fails(capsys, tmp_path, "folder", tmp_path / "raw", "size mismatch", "case0.png is 12x12", "case0.png is 7x5")


def test_empty_mask_is_allowed_counted_and_warned(tmp_path, capsys):
    make_folder(tmp_path / "raw", n=3)
    save(np.zeros((12, 12), np.uint8), tmp_path / "raw" / "masks" / "case0.png")
    with pytest.warns(DatasetWarning, match="1 of 3 masks have no foreground"):
        m = prep.prepare("folder", tmp_path / "raw", tmp_path / "out", size=8)
    assert m["n_empty_masks"] == 1 and m["empty_mask_ids"] == ["case0"]
    code, err = _cli(capsys, "--dataset", "folder", "--raw", tmp_path / "raw", "--out", tmp_path / "o2", "--size", "8")
    assert code == 0 and "warning: 1 of 3 masks have no foreground" in err


def test_empty_and_wrong_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _fails(capsys, tmp_path, "cvc", tmp_path / "empty", "no 'Original' folder")
    make_kvasir(tmp_path / "kv", n=2)
    _fails(capsys, tmp_path, "ph2", tmp_path / "kv", "PH2 Dataset images")
    (tmp_path / "f" / "images").mkdir(parents=True)
    (tmp_path / "f" / "masks").mkdir()
    _fails(capsys, tmp_path, "folder", tmp_path / "f", "contain no image files")
    code, err = _cli(capsys, "--dataset", "folder", "--raw", tmp_path / "nowhere", "--out", tmp_path / "o")
    assert code == 2 and err == f"error: --raw {tmp_path / 'nowhere'}: no such directory\n"


def test_duplicate_id(tmp_path, capsys):
    make_folder(tmp_path / "raw", n=3)
    shutil.copy(tmp_path / "raw" / "images" / "case1.bmp", tmp_path / "raw" / "images" / "case1.jpg")
    _fails(capsys, tmp_path, "folder", tmp_path / "raw", "id 'case1' occurs twice", "case1.bmp", "case1.jpg")


def test_out_must_not_contain_raw(tmp_path):
    make_folder(tmp_path / "data" / "raw", n=2)
    with pytest.raises(DatasetError, match="could delete the source"):
        prep.prepare("folder", tmp_path / "data" / "raw", tmp_path / "data")


def test_existing_out_replaced_on_success(tmp_path):
    make_folder(tmp_path / "raw", n=3)
    _earlier_output(tmp_path / "out")
    (tmp_path / "out" / "groups.json").write_text("{}")  # stale: this dataset has no groups
    _run("folder", tmp_path / "raw", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "ids.json",
        "images.npy",
        "manifest.json",
        "masks.npy",
        "split.json",
    ]
    (tmp_path / "empty").mkdir()
    _run("folder", tmp_path / "raw", tmp_path / "empty")  # an empty folder is fine too
    assert (tmp_path / "empty" / "manifest.json").exists()


@pytest.mark.parametrize(
    "files,why",
    [
        ({"best.pt": b"weights"}, "no manifest.json of ours"),  # e.g. --out runs
        ({"manifest.json": b'{"name": "something else"}', "a.npy": b"x"}, "no manifest.json of ours"),
        ({"manifest.json": b"not json"}, "no manifest.json of ours"),
        ({"manifest.json": b'{"format": 2, "dataset": "x", "size": 8}', "notes.txt": b"mine"}, "notes.txt"),
    ],
)
def test_out_that_is_not_ours_is_refused(tmp_path, capsys, files, why):
    make_folder(tmp_path / "raw", n=2)
    out = tmp_path / "runs"
    out.mkdir()
    for name, data in files.items():
        (out / name).write_bytes(data)
    (out / "synthetic").mkdir()
    files["synthetic"] = None
    code, err = _cli(capsys, "--dataset", "folder", "--raw", tmp_path / "raw", "--out", out, "--size", "8")
    assert code == 2 and err.startswith(f"error: --out {out}: not empty and not an earlier output"), err
    assert why in err and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(files)
    for name, data in files.items():
        assert data is None or (out / name).read_bytes() == data
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="exists and is not a folder"):
        prep.prepare("folder", tmp_path / "raw", tmp_path / "file", size=8)


def test_mask_values_one_rule(tmp_path):
    """0/1, 0/255, label-valued 0/v, 16-bit, colour, JPEG-noisy and instance-label masks all give the lesion."""
    rng = np.random.default_rng(0)
    lesion = np.zeros((16, 16), np.uint8)
    lesion[3:11, 4:13] = 1
    noisy = tmp_path / "raw" / "masks" / "jpeg.jpg"
    noisy.parent.mkdir(parents=True)
    noisy.write_bytes(jpeg_bytes(np.repeat(lesion[..., None] * 255, 3, axis=2), 60))
    instances = lesion.copy()
    instances[3:11, 9:13] = 2
    instances[3:5, 4:6] = 3
    masks = {
        "zero_one": lesion,
        "zero_255": lesion * 255,
        "zero_two": lesion * 2,
        "zero_hundred": lesion * 100,
        "sixteen_bit": lesion.astype(np.uint16) * 1000,
        "instances": instances,
    }
    for name, mask in masks.items():
        save(mask, tmp_path / "raw" / "masks" / f"{name}.png")
    colour = np.zeros((16, 16, 3), np.uint8)
    colour[lesion == 1] = (0, 0, 90)  # a dark blue lesion: two levels after the channel maximum
    save(colour, tmp_path / "raw" / "masks" / "colour.bmp")
    for stem in [*masks, "jpeg", "colour"]:
        save(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), tmp_path / "raw" / "images" / f"{stem}.png")
    m = _run("folder", tmp_path / "raw", tmp_path / "out")
    out = np.load(tmp_path / "out" / "masks.npy")
    ids = json.loads((tmp_path / "out" / "ids.json").read_text())
    for row, k in enumerate(ids):
        assert np.array_equal(out[row], lesion), k
    assert m["mask_rule_counts"] == {"label>0": 1, "threshold128": 1, "two-level": 6}
    assert m["foreground_percent"] == pytest.approx(100 * lesion.mean())
    assert m["mask_kind"] == "auto" and "at most two values" in m["mask_rule"]
    # GlaS-style label masks with a "binary" dataset would be wrong; the adapter's kind decides
    assert reader.binarize(instances, "binary").sum() == 0 and reader.binarize(instances, "label").sum() == lesion.sum()
