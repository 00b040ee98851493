"""H2Former: window and stem layout, other image sizes, and the two ECA-MLP layouts."""

import pytest
import torch

from baselines.h2former import EcaMlp, h2former


def test_window_is_image_size_over_16_and_the_stem_keeps_full_resolution():
    model = h2former()
    for stage in model.swin_stages:
        for block in stage:
            assert block.window_size == (14, 14)
    shifts = [block.shift_size for stage in model.swin_stages for block in stage]
    assert shifts == [(0, 0), (7, 7)] * 3 + [(0, 0), (0, 0)]  # last stage: one window, no shift
    assert model.cnn.conv1.stride == (1, 1)


def test_builds_for_another_multiple_of_16():
    torch.manual_seed(0)
    small = h2former(image_size=32).eval()
    assert all(block.window_size == (2, 2) for stage in small.swin_stages for block in stage)
    with torch.no_grad():
        assert small(torch.randn(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="32"):
        small(torch.randn(1, 3, 224, 224))
    with pytest.raises(ValueError, match="16"):
        h2former(image_size=200)


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
