"""FAT-Net baseline: size, shared adaptation blocks, 224 forward/backward, input size, local weights."""

import pytest
import timm
import torch

from baselines.fatnet import fatnet

SIZE = 224


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return fatnet()


def test_parameter_count_matches_reference_live_count(model):
    assert sum(p.numel() for p in model.parameters()) == 28_754_017
    cnn = sum(p.numel() for m in (model.cnn_stem, model.cnn_stages) for p in m.parameters())
    assert cnn == 21_284_672  # timm resnet34 without classifier
    deit = sum(p.numel() for m in (model.patch_embed, model.transformer_blocks) for p in m.parameters())
    assert deit == 5_486_016  # deit_tiny_distilled patch embedding + 12 blocks
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())


def test_feature_adaptation_is_one_module_applied_repeatedly(model):
    assert [a.repeats for a in model.skip_adapters] == [6, 4, 2]
    widths = [a.block.conv3.out_channels for a in model.skip_adapters]
    assert widths == [64, 128, 256]
    assert sum(p.numel() for p in model.skip_adapters.parameters()) == 861_056  # counted once each


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


def _perturbed(name):
    source = timm.create_model(name, pretrained=False)  # with its classifier(s), as shipped
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p))
    return source


def test_loads_local_resnet34_and_deit_weights(tmp_path):
    torch.manual_seed(1)
    resnet = _perturbed("resnet34")
    deit = _perturbed("deit_tiny_distilled_patch16_224")
    resnet_path, deit_path = tmp_path / "resnet34.pth", tmp_path / "deit_tiny_distilled.pth"
    torch.save(resnet.state_dict(), resnet_path)
    torch.save({"model": deit.state_dict()}, deit_path)  # the official DeiT release wraps it so

    torch.manual_seed(2)
    scratch = fatnet()
    torch.manual_seed(2)  # same initial weights: any difference comes from the file
    loaded = fatnet(pretrained_file=str(resnet_path), deit_file=str(deit_path))
    rsd, dsd = resnet.state_dict(), deit.state_dict()
    assert torch.equal(loaded.cnn_stem[0].weight, rsd["conv1.weight"])
    for i, stage in enumerate(loaded.cnn_stages):
        for key, value in stage.state_dict().items():
            assert torch.equal(value, rsd[f"layer{i + 1}.{key}"])
    assert torch.equal(loaded.patch_embed.proj.weight, dsd["patch_embed.proj.weight"])
    for key, value in loaded.transformer_blocks.state_dict().items():
        assert torch.equal(value, dsd[f"blocks.{key}"])
    assert not torch.equal(scratch.cnn_stem[0].weight, loaded.cnn_stem[0].weight)
    assert not torch.equal(scratch.transformer_blocks[0].attn.qkv.weight, loaded.transformer_blocks[0].attn.qkv.weight)


def test_missing_pretrained_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        fatnet(pretrained_file=str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError):
        fatnet(deit_file=str(tmp_path / "missing.pth"))
