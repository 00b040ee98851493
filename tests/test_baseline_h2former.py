"""H2Former baseline: size, 224 forward/backward, input-size checks, ECA MLP layouts, local weights."""

import pytest
import timm
import torch

from baselines.h2former import EcaMlp, h2former

SIZE = 224


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return h2former()


def test_parameter_count_matches_reference(model):
    assert sum(p.numel() for p in model.parameters()) == 33_678_656
    cnn = sum(p.numel() for m in (model.stem, model.cnn_stages) for p in m.parameters())
    assert cnn == 21_284_672  # timm resnet34 without classifier


def test_window_is_image_size_over_16(model):
    for stage in model.swin_stages:
        for block in stage:
            assert block.window_size == (14, 14)
    shifts = [block.shift_size for stage in model.swin_stages for block in stage]
    assert shifts == [(0, 0), (7, 7)] * 3 + [(0, 0), (0, 0)]  # last stage: one window, no shift


def test_forward_backward_at_224(model):
    model.train()
    x = torch.randn(1, 3, SIZE, SIZE)
    y = model(x)
    assert y.shape == (1, 1, SIZE, SIZE)
    y.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.zero_grad(set_to_none=True)


def test_rejects_other_sizes(model):
    with pytest.raises(ValueError, match="224"):
        model(torch.randn(1, 3, 256, 256))
    with pytest.raises(ValueError, match="16"):
        h2former(image_size=200)


def test_builds_for_another_multiple_of_16():
    torch.manual_seed(0)
    small = h2former(image_size=32).eval()
    assert all(block.window_size == (2, 2) for stage in small.swin_stages for block in stage)
    with torch.no_grad():
        assert small(torch.randn(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="32"):
        small(torch.randn(1, 3, 224, 224))


def test_eca_mlp_reference_layout_reproduces_the_reshape():
    torch.manual_seed(0)
    paper = EcaMlp(8, 16)
    reference = EcaMlp(8, 16, reference_layout=True)
    reference.load_state_dict(paper.state_dict())
    x = torch.randn(2, 4, 4, 8)  # (B, H, W, C)
    hidden = paper.fc2(paper.act(paper.fc1(x)))
    # paper: channel attention on the (B, C, H, W) map
    expected_paper = paper.eca(hidden.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    # reference: tokens (B, N, C) viewed as (B, C, H, W), gated, flattened and transposed back
    viewed = paper.eca(hidden.reshape(2, 16, 8).view(2, 8, 4, 4))
    expected_reference = viewed.flatten(2).transpose(1, 2).reshape(2, 4, 4, 8)
    assert torch.allclose(paper(x), expected_paper)
    assert torch.allclose(reference(x), expected_reference)
    assert not torch.allclose(paper(x), reference(x))


def test_loads_local_resnet34_weights(tmp_path):
    torch.manual_seed(1)
    source = timm.create_model("resnet34", pretrained=False)  # with its classifier, as shipped
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p))
    path = tmp_path / "resnet34.pth"
    torch.save(source.state_dict(), path)
    expected = source.state_dict()

    torch.manual_seed(2)
    scratch = h2former()
    torch.manual_seed(2)  # same initial weights: any difference comes from the file
    loaded = h2former(pretrained_file=str(path))
    assert torch.equal(loaded.stem[0].weight, expected["conv1.weight"])
    assert loaded.stem[0].stride == (1, 1)
    assert torch.equal(loaded.stem[1].running_var, expected["bn1.running_var"])
    for i, stage in enumerate(loaded.cnn_stages):
        for key, value in stage.state_dict().items():
            assert torch.equal(value, expected[f"layer{i + 1}.{key}"])
    assert not torch.equal(scratch.stem[0].weight, loaded.stem[0].weight)
    with pytest.raises(ValueError, match="not both"):
        h2former(pretrained_file=str(path), resnet_file=str(tmp_path / "other.pth"))


def test_missing_pretrained_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        h2former(pretrained_file=str(tmp_path / "missing.pth"))
