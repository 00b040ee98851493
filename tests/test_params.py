"""params.yaml's schema refuses what would fail later, in one line naming the entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.params import ParamsError, load_params

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("profile", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_every_profile_is_valid(profile):
    load_params(REPO / "configs" / profile)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prepare: {size: 64}\ntrain: {img_size: 32}\n", "train.img_size 32 differs from prepare.size 64"),
        (
            "prepare: {size: 64}\ntrain: {img_size: 64}\nmodels:\n  unet: {img_size: 32}\n",
            "models.unet.img_size 32 differs from prepare.size 64",
        ),
        ("datasets:\n  ph3: {raw: data/raw/PH2}\n", "datasets: unknown dataset 'ph3'; known: brain_mri, cvc"),
        ("datasets:\n  ph2: {raw: \"Bob's PH2\"}\n", "datasets.ph2.raw: \"Bob's PH2\": the stage's shell"),
        ("grid: {jobs: 0}\n", "grid.jobs: Input should be greater than or equal to 1"),
    ],
)
def test_mistakes_are_refused_with_the_entry(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError) as err:
        load_params(path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)


def test_one_size_given_sets_both(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("prepare: {size: 64}\n")
    assert load_params(path).train.img_size == 64
    path.write_text("train: {img_size: 48, epochs: 2}\n")
    assert load_params(path).prepare.size == 48


def test_a_folder_name_with_spaces_parentheses_and_accents_is_valid(tmp_path):
    path = tmp_path / "params.yaml"
    raw = "data/raw/Warwick QU Dataset (Released 2016_07_08) \u00fc"
    path.write_text(f'datasets:\n  glas: {{raw: "{raw}"}}\n', encoding="utf-8")
    assert load_params(path).datasets["glas"].raw == raw
