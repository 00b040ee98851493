"""BEFUnet: pixel-difference convolutions and official PiDiNet-small checkpoints."""

import dataclasses

import torch
import torch.nn.functional as F

from baselines.befunet import PRETRAINED_CFGS, PiDiNetSmallLevels, PixelDifferenceConv2d
from models.pretrained import load_pretrained


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


def _official_pidinet_checkpoint(levels) -> dict:
    """A randomly initialised trunk written with the key names of the official PiDiNet checkpoints."""
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
    state["module.classifier.weight"] = torch.ones(1, 4, 1, 1)  # edge heads: not part of BEFUnet
    state["module.conv_reduces.0.conv.weight"] = torch.ones(1, 12, 1, 1)
    return {"epoch": 13, "state_dict": state}


def test_loads_an_official_pidinet_small_checkpoint(tmp_path):
    torch.manual_seed(1)
    checkpoint = _official_pidinet_checkpoint(PiDiNetSmallLevels().levels)
    torch.save(checkpoint, tmp_path / "table5_pidinet-small.pth")
    trunk = PiDiNetSmallLevels()
    # BEFUnet's declaration, aimed at the trunk alone (in BEFUnet it is encoder.cnn)
    cfg = dataclasses.replace(PRETRAINED_CFGS["pidinet"], module="")
    load_pretrained(trunk, cfg, tmp_path / "table5_pidinet-small.pth", "pidinet")
    sd, levels = checkpoint["state_dict"], trunk.levels
    assert torch.equal(levels[0][0].weight, sd["module.init_block.weight"])
    assert torch.equal(levels[0][2].depthwise.weight, sd["module.block1_2.conv1.weight"])
    assert torch.equal(levels[3][0].shortcut.bias, sd["module.block4_1.shortcut.bias"])
    assert torch.equal(levels[2][3].pointwise.weight, sd["module.block3_4.conv2.weight"])
