"""The three U-Net baselines (U-Net, Attention U-Net, UNet++): shapes, gradients, input sizes.

Parameter counts and registry metadata are checked against baselines/reference_sizes.csv in
tests/test_baselines.py.
"""

import pytest
import torch

from models import create_model

UNETS = ["unet", "attention_unet", "unetpp"]


@pytest.fixture(scope="module", params=UNETS)
def named_model(request):
    torch.manual_seed(0)
    return request.param, create_model(request.param)


@pytest.mark.parametrize("size", [(16, 16), (32, 16)])
def test_forward_backward(named_model, size):
    _, model = named_model
    model.train()
    y = model(torch.randn(2, 3, *size))
    assert y.shape == (2, 1, *size)
    y.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("size", [(24, 32), (32, 40)])
def test_rejects_size_not_divisible_by_16(named_model, size):
    _, model = named_model
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.randn(1, 3, *size))


@pytest.mark.parametrize("name", UNETS)
def test_rejects_pretrained_file(name, tmp_path):
    with pytest.raises(ValueError, match="from scratch"):
        create_model(name, pretrained_file=str(tmp_path / "weights.pth"))
