"""segmentation_models.pytorch baselines: the generic builder, encoder_weights refused, local encoder files
(smp's own Hub weights, ``pretrained=True``: tests/test_pretrained_hub.py)."""

import pytest
import torch
import torchvision

from baselines import smp_zoo
from models.complexity import count_params


def test_generic_builder_passes_architecture_and_encoder():
    model = smp_zoo.smp_model(arch="FPN", encoder="resnet18")
    assert count_params(model) == 13_047_233
    with pytest.raises(ValueError, match="divisible by 32"):
        model(torch.randn(1, 3, 40, 32))


def test_generic_builder_refuses_encoder_weights():
    with pytest.raises(ValueError, match="encoder_weights is not taken here: pass pretrained=True"):
        smp_zoo.smp_model(encoder="resnet18", encoder_weights="imagenet")


def test_loads_a_torchvision_encoder_file_and_rejects_another_encoder(tmp_path):
    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()  # its classifier (fc.*) is dropped
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    loaded = smp_zoo.smp_model(arch="Unet", encoder="resnet18", pretrained_file=str(path))
    assert all(torch.equal(v, state[k]) for k, v in loaded.encoder.state_dict().items())
    with pytest.raises(ValueError, match=r"resnet18\.pth.* does not fit the backbone: .*missing"):
        smp_zoo.smp_model(arch="Unet", encoder="resnet34", pretrained_file=str(path))
