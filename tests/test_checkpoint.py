"""Checkpoint loading for evaluation: refused when the weights are not finite or do not fit the model."""

from __future__ import annotations

import pytest
import torch

from engine.checkpoint import CheckpointError, load_checkpoint, model_state, save_checkpoint
from engine.factory import model_from_checkpoint
from models import create_model

CONFIG = {"model": "tiny_run", "builder": "dyglnet", "model_kwargs": {"depths": [1, 1, 1]}, "img_size": 32}


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return model_state(create_model("dyglnet", depths=[1, 1, 1]))


def test_model_checkpoint_round_trip_returns_model_and_config(weights, tmp_path):
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"model": weights, "config": CONFIG, "epoch": 3, "best_val_dice": 71.5})
    model, cfg = model_from_checkpoint(path, "cpu")
    assert cfg["img_size"] == 32 and cfg["model"] == "tiny_run"
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key


def test_non_finite_weights_are_refused_naming_the_file(weights, tmp_path):
    path = tmp_path / "best.pt"
    broken = dict(weights)
    name = next(k for k, v in broken.items() if v.is_floating_point())
    broken[name] = broken[name].clone().fill_(float("nan"))
    save_checkpoint(path, {"model": broken, "config": CONFIG, "epoch": 1, "best_val_dice": 0.0})
    with pytest.raises(CheckpointError, match=rf"{path}: 1 weight tensor\(s\) hold NaN or infinity \(e.g. {name}\)"):
        model_from_checkpoint(path, "cpu")


def test_weights_of_another_configuration_are_a_checkpoint_error(weights, tmp_path):
    path = tmp_path / "best.pt"
    other = {**CONFIG, "model_kwargs": {"depths": [2, 1, 1]}}  # one more block in stage 1 than the weights have
    save_checkpoint(path, {"model": weights, "config": other, "epoch": 1, "best_val_dice": 0.0})
    with pytest.raises(CheckpointError, match=rf"{path}: its weights do not fit model 'dyglnet' .*missing"):
        model_from_checkpoint(path, "cpu")
    wrong_kwargs = {**CONFIG, "model_kwargs": {"no_such_option": 1}}
    save_checkpoint(path, {"model": weights, "config": wrong_kwargs, "epoch": 1, "best_val_dice": 0.0})
    with pytest.raises(CheckpointError, match="cannot build model 'dyglnet'"):
        model_from_checkpoint(path, "cpu")


def test_previous_format_still_loads_as_a_model(weights, tmp_path):
    path = tmp_path / "old.pt"
    config_v1 = {"model": "dyglnet", "model_kwargs": CONFIG["model_kwargs"], "img_size": 32}  # no builder yet
    torch.save({"format": "dyglbench-checkpoint-v1", "model": weights, "config": config_v1, "epoch": 0}, path)
    model, cfg = model_from_checkpoint(path, "cpu")
    assert cfg["model"] == "dyglnet"
    with pytest.raises(CheckpointError, match="older version"):
        load_checkpoint(path, kind="resume")


def test_a_run_with_a_pretrained_file_evaluates_after_the_file_is_gone(tmp_path):
    import torchvision

    encoder_file = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), encoder_file)
    kwargs = {"arch": "Unet", "encoder": "resnet18", "pretrained_file": str(encoder_file)}
    trained = model_state(create_model("smp", **kwargs))
    path = tmp_path / "best.pt"
    config = {"model": "smp_r18", "builder": "smp", "model_kwargs": kwargs, "img_size": 32}
    save_checkpoint(path, {"model": trained, "config": config, "epoch": 1, "best_val_dice": 50.0})
    encoder_file.unlink()  # e.g. evaluated on another machine: the checkpoint holds every weight
    model, cfg = model_from_checkpoint(path, "cpu")
    assert cfg["model_kwargs"]["pretrained_file"] == str(encoder_file)
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items())


def test_a_module_registered_twice_is_saved_once(tmp_path):
    """nnU-Net's blocks list each convolution as ``conv`` and as ``all_modules.0``: one tensor, two names."""
    import io

    conv = torch.nn.Conv2d(64, 64, 3)
    model = torch.nn.Module()
    model.conv, model.all_modules = conv, torch.nn.Sequential(conv, torch.nn.BatchNorm2d(64))
    state = model_state(model)
    assert set(state) == set(model.state_dict()) and state["conv.weight"] is state["all_modules.0.weight"]
    one = io.BytesIO()
    torch.save(model_state(conv), one)
    save_checkpoint(tmp_path / "best.pt", {"model": state}, kind="model")
    assert (tmp_path / "best.pt").stat().st_size < len(one.getvalue()) + 10_000  # not twice the weights
    loaded = torch.nn.Module()
    loaded.conv = torch.nn.Conv2d(64, 64, 3)
    loaded.all_modules = torch.nn.Sequential(loaded.conv, torch.nn.BatchNorm2d(64))
    loaded.load_state_dict(load_checkpoint(tmp_path / "best.pt")["model"])
    assert torch.equal(loaded.conv.weight, conv.weight)
