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
        ('datasets:\n  ph2: {raw: "Bob\'s PH2"}\n', "datasets.ph2.raw: \"Bob's PH2\": the stage's shell"),
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


def test_profile_tool_sets_one_dataset_and_keeps_the_rest(tmp_path):
    from pipeline.tools.profile import activate

    out = tmp_path / "params.yaml"
    raw = "data/raw/PH2 Dataset images (v1) \u00e9"
    text = activate("real-cpu", out, "ph2", raw)
    params = load_params(out)
    assert list(params.datasets) == ["ph2"] and params.datasets["ph2"].raw == raw
    assert params.profile == "real-cpu" and params.prepare.size == params.train.img_size == 64
    profile = (REPO / "configs" / "real-cpu.yaml").read_text()
    assert text.split("datasets:")[0] == profile.split("datasets:")[0]  # comments and the rest untouched
    assert text.split("\nmodels:")[1] == profile.split("\nmodels:")[1]


def test_profile_tool_refuses_and_writes_nothing(tmp_path):
    from core.errors import UserError
    from pipeline.tools.profile import activate

    out = tmp_path / "params.yaml"
    out.write_text("profile: mine\n")  # a params.yaml with edits
    for kwargs, message in [
        ({}, "differs from every profile in configs/"),
        ({"dataset": "ph3", "raw": "x", "force": True}, "unknown dataset 'ph3'"),
        ({"dataset": "ph2", "force": True}, "--dataset and --raw go together"),
    ]:
        with pytest.raises(UserError, match=message):
            activate("real-cpu", out, **kwargs)
        assert out.read_text() == "profile: mine\n"
    with pytest.raises(UserError, match="no profile configs/nope.yaml"):
        activate("nope", out)
