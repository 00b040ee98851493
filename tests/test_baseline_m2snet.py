"""M2SNet: the all-ones filters of the subtraction units are constants."""

import torch

from baselines.m2snet import m2snet


def test_all_ones_kernels_are_constant_buffers():
    model = m2snet()
    buffers = dict(model.named_buffers())
    for name, k in (("ones3.kernel", 3), ("ones5.kernel", 5)):
        assert torch.equal(buffers[name], torch.ones(64, 64, k, k))
    assert not any(name.endswith("kernel") for name, _ in model.named_parameters())
    assert not any(key.endswith("kernel") for key in model.state_dict())
