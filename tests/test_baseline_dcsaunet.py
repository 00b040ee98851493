"""DCSAU-Net baseline: shapes, gradients, accepted input sizes, parameter count."""

import pytest
import torch

from baselines.dcsaunet import dcsaunet

MIN_SIZE = 16


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return dcsaunet()


def test_forward_backward_at_min_size(model):
    size = (MIN_SIZE, MIN_SIZE)
    model.train()
    x = torch.randn(2, 3, *size)
    y = model(x)
    assert y.shape == (2, 1, *size)
    y.mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.zero_grad(set_to_none=True)


def test_no_divisibility_needed(model):
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 36, 50)).shape == (1, 1, 36, 50)


def test_rejects_too_small_input(model):
    with pytest.raises(ValueError, match="16"):
        model(torch.randn(1, 3, 8, 32))


def test_rejects_pretrained_file(tmp_path):
    with pytest.raises(ValueError, match="pretrained"):
        dcsaunet(pretrained_file=str(tmp_path / "weights.pth"))


def test_models_own_their_weights():
    # the reference shares one module-level encoder between all instances; ours must not
    a, b = dcsaunet(), dcsaunet()
    assert a.encoder[0][0].reduce[0].weight.data_ptr() != b.encoder[0][0].reduce[0].weight.data_ptr()
