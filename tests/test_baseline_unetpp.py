"""UNet++ baseline (4uiiurz1/pytorch-nested-unet NestedUNet): size, shapes, gradients, input sizes."""

import pytest
import torch

from baselines.unetpp import unetpp
from models.registry import _REGISTRY


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return unetpp()


def test_parameter_count_matches_reference(model):
    assert sum(p.numel() for p in model.parameters()) == 9_163_329


def test_registered_metadata():
    info = _REGISTRY["unetpp"]
    assert (info.family, info.display_name, info.min_input_size) == ("CNN", "Unet++", 16)


@pytest.mark.parametrize("size", [(16, 16), (32, 16)])
def test_forward_backward(model, size):
    model.train()
    y = model(torch.randn(2, 3, *size))
    assert y.shape == (2, 1, *size)
    y.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("size", [(24, 32), (32, 40)])
def test_rejects_size_not_divisible_by_16(model, size):
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.randn(1, 3, *size))


def test_rejects_pretrained_file(tmp_path):
    with pytest.raises(ValueError, match="from scratch"):
        unetpp(pretrained_file=str(tmp_path / "weights.pth"))
