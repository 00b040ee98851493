"""segmentation_models.pytorch baselines: sizes, registry metadata, input sizes, local encoder weights."""

import pytest
import torch
import torchvision

from baselines import smp_zoo
from models.registry import _REGISTRY

# name -> (parameters, min_input_size, a rejected square size or None when any size is accepted)
NAMED = {
    "smp_unet_resnet34": (24_436_369, 32, None),
    "smp_unetplusplus_resnet34": (26_078_609, 32, 48),
    "smp_deeplabv3plus_resnet50": (26_677_585, 16, 24),
    "smp_segformer_mitb1": (13_677_505, 32, 48),
}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_backward(model: torch.nn.Module, size: int) -> None:
    model.train()
    y = model(torch.randn(2, 3, size, size))
    assert y.shape == (2, 1, size, size)
    y.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(NAMED))
def test_named_model_size_metadata_and_size_check(name):
    params, min_size, rejected = NAMED[name]
    info = _REGISTRY[name]
    assert (info.family, info.min_input_size) == ("SMP", min_size)
    model = getattr(smp_zoo, name)()
    assert n_params(model) == params
    if rejected is not None:  # the pre-hook raises before any computation
        with pytest.raises(ValueError, match=f"divisible by {min_size}"):
            model(torch.randn(1, 3, rejected, rejected))


@pytest.mark.parametrize("name", ["smp_deeplabv3plus_resnet50", "smp_segformer_mitb1"])
def test_forward_backward_at_min_size(name):
    torch.manual_seed(0)
    forward_backward(getattr(smp_zoo, name)(), NAMED[name][1])


def test_unet_accepts_sizes_not_divisible_by_32():
    model = smp_zoo.smp_unet_resnet34().eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 40, 48)).shape == (1, 1, 40, 48)


def test_generic_builder_defaults_and_other_arch():
    assert _REGISTRY["smp"].builder is smp_zoo.smp_model
    assert n_params(smp_zoo.smp_model()) == NAMED["smp_unet_resnet34"][0]  # Unet + resnet34
    model = smp_zoo.smp_model(arch="FPN", encoder="resnet18")
    assert n_params(model) == 13_047_233
    forward_backward(model, 32)
    with pytest.raises(ValueError, match="divisible by 32"):
        model(torch.randn(1, 3, 40, 32))


def test_generic_builder_refuses_downloads():
    with pytest.raises(ValueError, match="download"):
        smp_zoo.smp_model(encoder="resnet18", encoder_weights="imagenet")


def test_loads_local_encoder_file(tmp_path):
    # an ImageNet-style torchvision checkpoint: the classifier keys (fc.*) are dropped by smp
    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    torch.manual_seed(2)
    scratch = smp_zoo.smp_model(arch="Unet", encoder="resnet18")
    loaded = smp_zoo.smp_model(arch="Unet", encoder="resnet18", pretrained_file=str(path))
    key = "layer1.0.conv1.weight"
    assert not torch.equal(scratch.encoder.state_dict()[key], state[key])
    assert torch.equal(loaded.encoder.state_dict()[key], state[key])
    assert all(torch.equal(v, state[k]) for k, v in loaded.encoder.state_dict().items())


def test_rejects_mismatched_or_missing_encoder_file(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="does not match the Unet/resnet18 encoder"):
        smp_zoo.smp_model(arch="Unet", encoder="resnet18", pretrained_file=str(path))
    with pytest.raises(FileNotFoundError):
        smp_zoo.smp_model(encoder="resnet18", pretrained_file=str(tmp_path / "absent.pth"))
