"""M2SNet baseline: shapes, gradients, accepted input sizes, constants, local backbone weights."""

import pytest
import timm
import torch

from baselines.m2snet import m2snet

MIN_SIZE = 32


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return m2snet()


def test_parameter_count_matches_reference(model):
    assert sum(p.numel() for p in model.parameters()) == 27_692_585
    # backbone = timm res2net50d without classifier
    assert sum(p.numel() for p in model.backbone.parameters()) == 23_669_352


def test_all_ones_kernels_are_constant_buffers(model):
    buffers = dict(model.named_buffers())
    for name, k in (("ones3.kernel", 3), ("ones5.kernel", 5)):
        assert torch.equal(buffers[name], torch.ones(64, 64, k, k))
    assert not any(name.endswith("kernel") for name, _ in model.named_parameters())
    assert not any(key.endswith("kernel") for key in model.state_dict())


def test_forward_backward_at_min_size(model):
    size = (MIN_SIZE, MIN_SIZE)
    model.train()
    x = torch.randn(2, 3, *size)
    y = model(x)
    assert y.shape == (2, 1, *size)
    y.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.zero_grad(set_to_none=True)


def test_no_divisibility_needed(model):
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 40, 56)).shape == (1, 1, 40, 56)


def test_rejects_too_small_input(model):
    with pytest.raises(ValueError, match="32"):
        model(torch.randn(1, 3, 24, 64))


def test_loads_local_timm_res2net50d_weights(tmp_path):
    torch.manual_seed(1)
    source = timm.create_model("res2net50d", pretrained=False)  # with its classifier, as timm ships it
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p))  # make BN affine weights differ from their constant init too
    path = tmp_path / "res2net50d.pth"
    torch.save(source.state_dict(), path)

    torch.manual_seed(2)
    scratch = m2snet()
    loaded = m2snet(pretrained_file=str(path))
    expected = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    got = loaded.backbone.state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert not torch.equal(scratch.backbone.conv1[0].weight, loaded.backbone.conv1[0].weight)


def test_missing_pretrained_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        m2snet(pretrained_file=str(tmp_path / "missing.pth"))
