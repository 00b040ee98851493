"""CMUNeXt-L baseline: shapes, gradients, accepted input sizes, parameter count."""

import pytest
import torch

from baselines.cmunext_l import cmunext_l

MIN_SIZE = 16


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return cmunext_l()


def test_forward_backward_at_min_size(model):
    size = (MIN_SIZE, MIN_SIZE)
    model.train()
    x = torch.randn(2, 3, *size)
    y = model(x)
    assert y.shape == (2, 1, *size)
    y.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.zero_grad(set_to_none=True)


def test_non_square_multiple_of_16(model):
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 48)).shape == (1, 1, 32, 48)


@pytest.mark.parametrize("size", [(24, 32), (32, 40)])
def test_rejects_sizes_not_divisible_by_16(model, size):
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.randn(1, 3, *size))


def test_rejects_pretrained_file(tmp_path):
    with pytest.raises(ValueError, match="pretrained"):
        cmunext_l(pretrained_file=str(tmp_path / "weights.pth"))
