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
from fakedata import MAKERS, make_brain, make_folder, make_isic, make_kvasir, make_tnbc, save

import datasets.reader as reader
import pipeline.prepare as prep
from datasets.resize import resize_image
from datasets import DatasetError, DatasetWarning
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
    monkeypatch.setattr(prep, "read_bytes", lambda p: calls["read"].append(p) or real_read(p))
    monkeypatch.setattr(prep, "decode", lambda d, p, **k: calls["decode"].append(p) or real_decode(d, p, **k))
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


def _cli(capsys, *args):
    code = prep.main([*map(str, args), "--params", "/nonexistent/params.yaml"])
    return code, capsys.readouterr().err


def test_cli_params_defaults_and_override(tmp_path, capsys):
    raw, out = _kv(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text("prepare:\n  size: 12\n  seed: 5\nother: {x: 1}\n")
    args = ["--dataset", "kvasir", "--raw", str(raw), "--out", str(out), "--params", str(params)]
    assert prep.main(args) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert (m["size"], m["seed"]) == (12, 5)
    assert prep.main([*args, "--size", "8"]) == 0
    assert json.loads((out / "manifest.json").read_text())["size"] == 8
    code, _ = _cli(capsys, "--dataset", "kvasir", "--raw", raw, "--out", out)
    assert code == 0 and json.loads((out / "manifest.json").read_text())["size"] == 224


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


def _fails(capsys, tmp_path, name, raw, *patterns):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    (out / "previous.txt").write_text("keep me")
    code, err = _cli(capsys, "--dataset", name, "--raw", raw, "--out", out, "--size", "8")
    assert code == 2 and "\nerror: " in "\n" + err, err
    for pat in patterns:
        assert pat in err, (pat, err)
    assert "expected layout for --dataset" in err
    assert sorted(p.name for p in out.iterdir()) == ["previous.txt"]  # existing --out untouched
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
    _fails(capsys, tmp_path, "folder", tmp_path / "nowhere", "no such directory")


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
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.npy").write_bytes(b"x")
    _run("folder", tmp_path / "raw", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "ids.json",
        "images.npy",
        "manifest.json",
        "masks.npy",
        "split.json",
    ]
