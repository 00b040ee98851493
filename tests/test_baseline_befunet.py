"""BEFUnet baseline (Omid-Nejati/BEFUnet): size, pixel-difference convs, gradients, 224 input, weights."""

import pytest
import timm
import torch
import torch.nn.functional as F

from baselines.befunet import PixelDifferenceConv2d, befunet
from models.registry import _REGISTRY


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return befunet()


def test_parameter_count(model):
    # reference: 41,692,449 built, minus PiDiNet's four never-run MapReduce convs (4 x 13)
    assert sum(p.numel() for p in model.parameters()) == 41_692_397
    # PiDiNet-small trunk: init conv + 15 blocks, no edge heads
    assert sum(p.numel() for p in model.encoder.cnn.parameters()) == 158_610
    # the fusion's position embeddings are used by the reference's forward, so they are kept
    assert sum(p.numel() for p in model.fusion.pos_embeds.parameters()) == 339_552


def test_registered_metadata():
    info = _REGISTRY["befunet"]
    assert (info.family, info.display_name, info.fixed_input_size, info.min_input_size) == (
        "Hybrid",
        "BEFUnet",
        224,
        224,
    )


def test_pixel_difference_convolutions_match_their_definitions():
    torch.manual_seed(2)
    x = torch.randn(1, 2, 9, 9)
    cd, ad, rd = (PixelDifferenceConv2d(2, 2, mode, groups=2) for mode in ("cd", "ad", "rd"))
    # central: sum_i w_i * (x_i - x_centre)
    centre = F.conv2d(x, cd.weight.sum(dim=(2, 3), keepdim=True), groups=2)
    torch.testing.assert_close(cd(x), F.conv2d(x, cd.weight, padding=1, groups=2) - centre)
    # angular: w_i * (x_i - x_clockwise-next_i); w with only the top-left tap set
    w = torch.zeros_like(ad.weight)
    w[:, :, 0, 0] = 1.0
    ad.weight.data.copy_(w)
    expected = torch.zeros_like(w)
    expected[:, :, 0, 0], expected[:, :, 0, 1] = 1.0, -1.0
    torch.testing.assert_close(ad(x), F.conv2d(x, expected, padding=1, groups=2))
    # radial: w_i * (x at distance 2 - x at distance 1) along each of the 8 directions
    rd.weight.data.copy_(torch.arange(18.0).view(2, 1, 3, 3))
    k = rd.equivalent_kernel()
    assert k.shape == (2, 1, 5, 5)
    torch.testing.assert_close(k[0, 0, 0, 0], torch.tensor(1.0))
    torch.testing.assert_close(k[0, 0, 1, 1], torch.tensor(-1.0))
    torch.testing.assert_close(k[1, 0, 4, 4], torch.tensor(17.0))
    assert k[:, :, 2, 2].abs().sum() == 0 and rd(x).shape == x.shape


def test_forward_backward_at_224(model):
    model.train()
    out = model(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1, 224, 224)
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.fusion.cross_block.blocks[1][1].mlp.fc2.weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("size", [(256, 256), (192, 224)])
def test_rejects_sizes_other_than_224(model, size):
    with pytest.raises(ValueError, match="224"):
        model(torch.randn(1, 3, *size))


def _official_pidinet_checkpoint(levels) -> dict:
    """Our randomly initialised trunk written with the key names of the official PiDiNet checkpoints."""
    names = {"depthwise": "conv1", "pointwise": "conv2", "shortcut": "shortcut"}
    state = {"module.init_block.weight": levels[0][0].weight.detach() + 1.0}
    for stage, level in enumerate(levels, start=1):
        for j, block in enumerate(level):
            if stage == 1 and j == 0:
                continue
            index = j if stage == 1 else j + 1
            for key, value in block.state_dict().items():
                part, _, tail = key.partition(".")
                state[f"module.block{stage}_{index}.{names[part]}.{tail}"] = value + 1.0
    state["module.classifier.weight"] = torch.ones(1, 4, 1, 1)  # edge heads: ignored
    state["module.conv_reduces.0.conv.weight"] = torch.ones(1, 12, 1, 1)
    return {"epoch": 13, "state_dict": state}


def test_loads_local_swin_t_and_pidinet_weights(model, tmp_path):
    torch.manual_seed(1)
    swin = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False).state_dict()
    with torch.no_grad():
        for v in swin.values():
            v.add_(torch.randn_like(v))
    torch.save(swin, tmp_path / "swin_t.pth")
    pidinet = _official_pidinet_checkpoint(model.encoder.cnn.levels)
    torch.save(pidinet, tmp_path / "table5_pidinet-small.pth")

    loaded = befunet(str(tmp_path / "swin_t.pth"), pidinet_file=tmp_path / "table5_pidinet-small.pth")

    for k, v in loaded.encoder.swin_stages.state_dict().items():
        assert torch.equal(v, swin[f"layers.{k}"]), k
    sd = pidinet["state_dict"]
    levels = loaded.encoder.cnn.levels
    assert torch.equal(levels[0][0].weight, sd["module.init_block.weight"])
    assert torch.equal(levels[0][2].depthwise.weight, sd["module.block1_2.conv1.weight"])
    assert torch.equal(levels[3][0].shortcut.bias, sd["module.block4_1.shortcut.bias"])
    assert torch.equal(levels[2][3].pointwise.weight, sd["module.block3_4.conv2.weight"])
    assert not torch.equal(levels[1][1].depthwise.weight, model.encoder.cnn.levels[1][1].depthwise.weight)
    assert not torch.equal(
        loaded.encoder.swin_stages[3].downsample.reduction.weight,
        model.encoder.swin_stages[3].downsample.reduction.weight,
    )
