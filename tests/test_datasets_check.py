"""``python -m datasets check``: one table, one line per kind of problem, exit 2; ``prepare`` runs the same check
and fails on unusable data, warns on the rest."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from fakedata import make_kvasir, make_ph2, make_tnbc, save

import datasets.__main__ as cli
import pipeline.prepare as prep
from core.cli import run
from datasets.adapters.kvasir import Kvasir
from datasets.adapters.tnbc import TNBC
from datasets.base import DatasetError, DatasetWarning
from datasets.check import check
from datasets.registry import adapter_class, adapter_names


def _cli(capsys, *argv) -> tuple[int, str, str]:
    code = run(cli.main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _rows(out: str) -> dict[str, str]:
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 2 and not set(cells[0]) <= {"-"}:
            rows[cells[0]] = cells[1]
    return rows


def test_documented_counts():
    counts = {n: adapter_class(n).expected_pairs for n in adapter_names()}
    assert counts == {
        "kvasir": 1000,
        "cvc": 612,
        "brain_mri": 3929,
        "isic2016": 1279,
        "ph2": 200,
        "glas": 165,
        "tnbc": 50,
        "folder": None,
        "synthetic": None,
        "shifted": None,
    }


def test_a_complete_clean_tree_passes_with_its_table(tmp_path, capsys, monkeypatch):
    make_tnbc(tmp_path, slides=(1, 2), per_slide=3)
    monkeypatch.setattr(TNBC, "expected_pairs", 6)
    code, out, err = _cli(capsys, "check", "tnbc", "--raw", tmp_path)
    assert code == 0 and err == "", err
    rows = _rows(out)
    assert rows["pairs found"] == "6 (documented: 6)"
    assert rows["unreadable or corrupt files"] == "0" and rows["image/mask size mismatches"] == "0"
    assert rows["duplicate images (sha256)"] == "0" and rows["masks foreground everywhere"] == "0"
    assert rows["mask values"] == "0/255: 6" and rows["image sizes (W x H)"] == "all 16x16"
    assert rows["mean foreground"] == "25.00%"


def test_one_line_per_kind_of_problem(tmp_path, capsys):
    make_kvasir(tmp_path, n=8)
    images, masks = tmp_path / "Kvasir-SEG" / "images", tmp_path / "Kvasir-SEG" / "masks"
    files = sorted(images.iterdir())
    for victim in files[:2]:  # two corrupt files: one line
        victim.write_bytes(victim.read_bytes()[:100])
    save(np.zeros((5, 7, 3), np.uint8), masks / files[2].name, quality=90)  # a mask of another size
    shutil.copy(files[3], images / "copy.jpg")  # the same image under a second id
    shutil.copy(masks / files[3].name, masks / "copy.jpg")
    h = 24 + 4 % 3  # make_kvasir: image i has 24 + i % 3 rows
    save(np.full((h, 32, 3), 255, np.uint8), masks / files[4].name, quality=90)  # foreground everywhere
    code, out, err = _cli(capsys, "check", "kvasir", "--raw", tmp_path)
    assert code == 2
    lines = err.splitlines()
    kinds = [line.split(")")[0].removeprefix("problem (") for line in lines]
    assert kinds == ["count", "unreadable", "size mismatch", "duplicates", "mask values"], err
    assert "9 pairs found, Kvasir-SEG has 1000 (an incomplete download, or another version)" in lines[0]
    assert "2 unreadable or corrupt file(s)" in lines[1] and str(files[0]) in lines[1]
    assert "truncated" in lines[1].lower()
    assert "1 image/mask size mismatch(es)" in lines[2] and "is 7x5" in lines[2]
    assert f"{files[3].stem} = copy" in lines[3] or f"copy = {files[3].stem}" in lines[3]
    assert "1 mask(s) foreground everywhere" in lines[4] and files[4].stem in lines[4]
    rows = _rows(out)
    assert rows["pairs found"] == "9 (documented: 1000)" and rows["unreadable or corrupt files"] == "2"
    assert rows["duplicate images (sha256)"] == "1"


def test_the_tree_of_another_dataset_says_which_it_looks_like(tmp_path, capsys):
    make_ph2(tmp_path, n=3)
    code, _, err = _cli(capsys, "check", "kvasir", "--raw", tmp_path)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("problem (layout): ") and "this tree looks like ph2 (its adapter finds 3 pairs here)" in err


def test_image_size_statistics_and_missing_folder(tmp_path, capsys):
    make_kvasir(tmp_path, n=6)  # 24, 25 and 26 rows of 32 columns
    report = check("kvasir", tmp_path)
    assert dict(report.rows)["image sizes (W x H)"] == "32x24 to 32x26; 3 distinct; most common 32x24 (2 of 6)"
    code, _, err = _cli(capsys, "check", "kvasir", "--raw", tmp_path / "none")
    assert code == 2 and err.startswith("error: --raw ") and "no such directory" in err and err.count("\n") == 1


def test_prepare_warns_on_count_and_duplicates_but_fails_on_unusable_data(tmp_path, monkeypatch):
    make_kvasir(tmp_path / "raw", n=6)
    images, masks = tmp_path / "raw" / "Kvasir-SEG" / "images", tmp_path / "raw" / "Kvasir-SEG" / "masks"
    first = sorted(images.iterdir())[0]
    shutil.copy(first, images / "copy.jpg")
    shutil.copy(masks / first.name, masks / "copy.jpg")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DatasetWarning)
        manifest = prep.prepare("kvasir", tmp_path / "raw", tmp_path / "out", size=8)
    texts = [str(w.message) for w in caught if issubclass(w.category, DatasetWarning)]
    assert any(t.startswith("count: 7 pairs found, Kvasir-SEG has 1000") for t in texts), texts
    assert any(t.startswith("duplicates: 1 image file(s)") for t in texts), texts
    assert manifest["counts"]["kept"] == 7

    monkeypatch.setattr(Kvasir, "expected_pairs", 7)
    (images / "copy.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="1 unreadable or corrupt file") as info:
        prep.prepare("kvasir", tmp_path / "raw", tmp_path / "out2", size=8)
    assert "expected layout for --dataset kvasir" in str(info.value) and not (tmp_path / "out2").exists()


def test_prepare_names_the_dataset_a_wrong_tree_looks_like(tmp_path):
    make_ph2(tmp_path / "raw", n=2)
    with pytest.raises(DatasetError, match="this tree looks like ph2"):
        prep.prepare("tnbc", tmp_path / "raw", tmp_path / "out", size=8)


def test_licences_table_lists_every_paper_dataset(capsys):
    code, out, _ = _cli(capsys, "--licences")
    assert code == 0
    for name in ("kvasir", "cvc", "brain_mri", "isic2016", "ph2", "glas", "tnbc"):
        assert f"| {name} " in out
    assert "CC BY-NC-SA 4.0" in out and "doi:10.1109/TMI.2018.2865709" in out


def test_list_keeps_working(capsys):
    code, out, _ = _cli(capsys)
    assert code == 0 and out.startswith("brain_mri (Brain-MRI") and "tnbc (TNBC" in out
    assert _cli(capsys, "list", "ph2")[1] == _cli(capsys, "ph2")[1]
    assert Path(cli.__file__).exists()
