"""Each adapter pairs files in its dataset's real layout, with stable ids, groups and subsets."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fakedata import (
    MAKERS,
    make_brain,
    make_cvc,
    make_folder,
    make_glas,
    make_isic,
    make_kvasir,
    make_ph2,
    make_tnbc,
    save,
)

from datasets.base import DatasetError, pair_by_stem
from datasets.reader import load_image, load_mask
from datasets.registry import adapter_class, adapter_names, get_adapter


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_pairs_ids_and_content(tmp_path, name):
    truth = MAKERS[name](tmp_path)
    adapter = get_adapter(name)
    pairs = adapter.pairs(tmp_path)
    assert [p.id for p in pairs] == sorted(truth)
    for p in pairs:
        image, mask = truth[p.id]
        assert np.array_equal(load_mask(p.mask, adapter.mask_kind), mask), p.id
        got = load_image(p.image)
        assert got.shape == image.shape
        if p.image.suffix == ".jpg":  # lossy: colour order and levels must still match
            assert np.abs(got.reshape(-1, 3).mean(0) - image.reshape(-1, 3).mean(0)).max() < 3
        else:
            assert np.array_equal(got, image), p.id


def test_registry_has_every_dataset():
    assert set(adapter_names()) == {
        "kvasir",
        "cvc",
        "brain_mri",
        "isic2016",
        "ph2",
        "glas",
        "tnbc",
        "folder",
        "synthetic",
        "shifted",
    }
    with pytest.raises(DatasetError, match="unknown dataset"):
        get_adapter("nope")
    for name in adapter_names():
        cls = adapter_class(name)
        assert cls.name == name and cls.layout and cls.split in ("8:1:1", "4:1", "official")


def test_raw_may_point_at_dataset_folder_or_above(tmp_path):
    make_kvasir(tmp_path, n=3)
    a = get_adapter("kvasir")
    assert [p.id for p in a.pairs(tmp_path)] == [p.id for p in a.pairs(tmp_path / "Kvasir-SEG")]


def test_brain_groups_and_tumour_rule(tmp_path):
    truth = make_brain(tmp_path, patients=2, slices=4)
    a = get_adapter("brain_mri")
    pairs = a.pairs(tmp_path)
    assert len(pairs) == 8
    assert {p.group for p in pairs} == {"TCGA_CS_4941", "TCGA_CS_4942"}
    assert all(p.id.startswith(p.group) for p in pairs)
    kept = [p.id for p in pairs if a.keep(load_mask(p.mask))]
    assert kept == sorted(k for k, (_, m) in truth.items() if m.any())


def test_brain_two_copies_is_ambiguous(tmp_path):
    make_brain(tmp_path / "a", patients=1, slices=1)
    make_brain(tmp_path / "b", patients=1, slices=1)
    with pytest.raises(DatasetError, match="2 directories match 'kaggle_3m'"):
        get_adapter("brain_mri").pairs(tmp_path)


def test_cvc_png_copy_and_preference_for_tiff(tmp_path):
    make_cvc(tmp_path, n=3, png=True)
    pairs = get_adapter("cvc").pairs(tmp_path)
    assert [p.id for p in pairs] == ["1", "2", "3"] and pairs[0].image.suffix == ".png"
    make_cvc(tmp_path, n=3)
    pairs = get_adapter("cvc").pairs(tmp_path)
    assert pairs[0].image.suffix == ".tif" and pairs[0].mask.parent.name == "Ground Truth"


def test_isic_official_subsets(tmp_path):
    make_isic(tmp_path, n_train=3, n_test=2)
    pairs = get_adapter("isic2016").pairs(tmp_path)
    assert [p.subset for p in pairs] == ["train"] * 3 + ["test"] * 2
    assert pairs[0].mask.name == "ISIC_0000000_Segmentation.png"


def test_glas_instance_labels_become_binary(tmp_path):
    truth = make_glas(tmp_path, counts=(1, 1, 1))
    pairs = get_adapter("glas").pairs(tmp_path)
    assert [p.id for p in pairs] == ["testA_1", "testB_1", "train_1"]
    mask = load_mask(pairs[0].mask, "label")
    assert np.array_equal(mask, truth["testA_1"][1]) and load_mask(pairs[0].mask, "binary").sum() == 0


def test_tnbc_slide_groups(tmp_path):
    make_tnbc(tmp_path, slides=(1, 11), per_slide=2)
    pairs = get_adapter("tnbc").pairs(tmp_path)
    assert [(p.id, p.group) for p in pairs] == [("01_1", "01"), ("01_2", "01"), ("11_1", "11"), ("11_2", "11")]


def test_folder_mixed_formats_and_duplicate_stem(tmp_path):
    make_folder(tmp_path, n=3)
    assert len(get_adapter("folder").pairs(tmp_path)) == 3
    shutil.copy(tmp_path / "images" / "case0.png", tmp_path / "images" / "case0.jpg")
    with pytest.raises(DatasetError, match="'case0' occurs twice"):
        get_adapter("folder").pairs(tmp_path)


def test_hidden_and_non_image_files_are_ignored(tmp_path):
    make_folder(tmp_path, n=2)
    (tmp_path / "images" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "images" / "notes.txt").write_text("x")
    (tmp_path / "masks" / "Thumbs.db").write_bytes(b"\0")
    assert len(get_adapter("folder").pairs(tmp_path)) == 2


def test_isic_same_id_in_train_and_test(tmp_path):
    make_isic(tmp_path, n_train=2, n_test=1)
    src = tmp_path / "ISBI2016_ISIC_Part1_Training_Data" / "ISIC_0000000.jpg"
    shutil.copy(src, tmp_path / "ISBI2016_ISIC_Part1_Test_Data" / src.name)
    gt = tmp_path / "ISBI2016_ISIC_Part1_Training_GroundTruth" / "ISIC_0000000_Segmentation.png"
    shutil.copy(gt, tmp_path / "ISBI2016_ISIC_Part1_Test_GroundTruth" / gt.name)
    with pytest.raises(DatasetError, match="'ISIC_0000000' occurs twice"):
        get_adapter("isic2016").pairs(tmp_path)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_wrong_or_empty_folder(tmp_path, name):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError):
        get_adapter(name).pairs(tmp_path / "empty")
    other = "glas" if name != "glas" else "kvasir"
    MAKERS[other](tmp_path / "other")
    with pytest.raises(DatasetError):
        get_adapter(name).pairs(tmp_path / "other")


def test_ph2_missing_lesion_mask(tmp_path):
    make_ph2(tmp_path, n=2)
    case = tmp_path / "PH2Dataset" / "PH2 Dataset images" / "IMD003"
    (case / "IMD003_lesion" / "IMD003_lesion.bmp").unlink()
    with pytest.raises(DatasetError, match="IMD003_lesion.bmp \\(mask of case IMD003\\)"):
        get_adapter("ph2").pairs(tmp_path)


def test_tnbc_mask_without_image(tmp_path):
    make_tnbc(tmp_path, slides=(1,), per_slide=2)
    save(np.zeros((4, 4), np.uint8), tmp_path / "TNBC_NucleiSegmentation" / "GT_01" / "01_9.png")
    pattern = "mask\\(s\\) without an image: .*01_9.png \\(expected .*Slide_01/01_9.png"
    with pytest.raises(DatasetError, match=pattern):
        get_adapter("tnbc").pairs(tmp_path)


def _touch(*paths: Path) -> list[Path]:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    return sorted(paths)


def test_pair_by_stem_with_a_suffix_in_one_folder(tmp_path):
    files = _touch(tmp_path / "a.tif", tmp_path / "a_mask.tif", tmp_path / "b.tif", tmp_path / "b_mask.tif")
    assert pair_by_stem(files, files, suffix="_mask") == [
        ("a", tmp_path / "a.tif", tmp_path / "a_mask.tif"),
        ("b", tmp_path / "b.tif", tmp_path / "b_mask.tif"),
    ]
    files = _touch(tmp_path / "c.tif") + files
    with pytest.raises(
        DatasetError, match=f"1 image\\(s\\) without a mask: {tmp_path}/c.tif \\(expected .*/c_mask.tif\\)"
    ):
        pair_by_stem(files, files, suffix="_mask")


def test_pair_by_stem_across_folders(tmp_path):
    images = _touch(tmp_path / "img" / "x.jpg", tmp_path / "img" / "y.jpg")
    masks = _touch(tmp_path / "gt" / "x_seg.png", tmp_path / "gt" / "z_seg.png")
    with pytest.raises(DatasetError) as err:
        pair_by_stem(images, masks, suffix="_seg", mask_dir=tmp_path / "gt", mask_ext=".png", image_ext=".jpg")
    assert f"{tmp_path}/img/y.jpg (expected {tmp_path}/gt/y_seg.png)" in str(err.value)
    assert f"{tmp_path}/gt/z_seg.png (expected {tmp_path}/gt/z.jpg)" in str(err.value)  # image_dir defaults to own
    slides = _touch(tmp_path / "Slide_01" / "01_1.png", tmp_path / "Slide_02" / "02_1.png")
    gts = _touch(tmp_path / "GT_01" / "01_1.png")
    with pytest.raises(DatasetError, match="expected .*GT_02/02_1.png"):
        pair_by_stem(slides, gts, mask_dir=lambda d: d.parent / d.name.replace("Slide_", "GT_"))
    with pytest.raises(DatasetError, match="'x' occurs twice"):
        pair_by_stem([*images, tmp_path / "img" / "x.png"], masks, suffix="_seg")


def test_python_m_datasets_lists_every_adapter(capsys):
    from datasets.__main__ import main

    assert main([]) == 0
    out = capsys.readouterr().out
    for name in adapter_names():
        cls = adapter_class(name)
        assert f"{name} ({cls.display_name}, split {cls.split}, masks: {cls.mask_kind})" in out
    assert main(["glas"]) == 0 and capsys.readouterr().out.startswith("glas (GlaS, split 8:1:1, masks: label)")
    with pytest.raises(DatasetError, match="unknown dataset 'nope'"):
        main(["nope"])
