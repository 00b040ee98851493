"""FAT-Net: one feature adaptation module applied repeatedly per skip, and no max-pool in the CNN branch."""

import torch

from baselines.fatnet import fatnet


def test_structure():
    model = fatnet()
    assert [a.repeats for a in model.skip_adapters] == [6, 4, 2]
    assert [a.block.conv3.out_channels for a in model.skip_adapters] == [64, 128, 256]
    assert sum(p.numel() for p in model.skip_adapters.parameters()) == 861_056  # each block counted once
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
