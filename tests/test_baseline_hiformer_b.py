"""HiFormer-B baseline (amirhossein-kz/HiFormer): size, shapes, gradients, fixed 224 input, local weights."""

import pytest
import timm
import torch

from baselines._crossvit_fusion import resolve_weight_files
from baselines.hiformer_b import hiformer_b
from models.registry import _REGISTRY


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return hiformer_b()


def test_parameter_count_matches_reference(model):
    assert sum(p.numel() for p in model.parameters()) == 25_510_955
    # timm resnet50 stem + layers 1-3, as torchvision's children()[:7] in the reference
    assert sum(p.numel() for p in model.encoder.cnn.parameters()) == 8_543_296


def test_registered_metadata():
    info = _REGISTRY["hiformer_b"]
    assert (info.family, info.display_name, info.fixed_input_size, info.min_input_size) == (
        "Hybrid",
        "HiFormer-B",
        224,
        224,
    )


def test_forward_backward_at_224(model):
    model.train()
    out = model(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1, 224, 224)
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    # the fusion's ViT encoders feed the decoder (the reference discards their output)
    assert model.fusion.cross_block.blocks[0][0].attn.qkv.weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("size", [(256, 256), (224, 192)])
def test_rejects_sizes_other_than_224(model, size):
    with pytest.raises(ValueError, match="224"):
        model(torch.randn(1, 3, *size))


def test_weight_file_arguments():
    with pytest.raises(TypeError, match="resnet_file"):
        hiformer_b(pretrained_file="weights.pth")  # one path cannot name two backbones
    names = ("resnet", "swin")
    assert resolve_weight_files("m", {"resnet_file": "r.pth"}, names, swin="s.pth") == {
        "resnet": "r.pth",
        "swin": "s.pth",
    }
    with pytest.raises(ValueError, match="twice"):
        resolve_weight_files("m", {"swin": "a.pth"}, names, swin="b.pth")
    with pytest.raises(ValueError, match="unknown"):
        resolve_weight_files("m", {"cnn": "a.pth"}, names)


def test_loads_local_resnet50_and_swin_t_weights(model, tmp_path):
    torch.manual_seed(1)
    resnet = timm.create_model("resnet50", pretrained=False).state_dict()  # as torchvision/timm ship it
    swin = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False).state_dict()
    with torch.no_grad():
        for state in (resnet, swin):
            for v in state.values():
                if v.is_floating_point():
                    v.add_(torch.randn_like(v))  # norms differ from their constant init too
    torch.save(resnet, tmp_path / "resnet50.pth")
    torch.save(swin, tmp_path / "swin_t.pth")

    loaded = hiformer_b({"resnet": tmp_path / "resnet50.pth", "swin": tmp_path / "swin_t.pth"})

    for k, v in loaded.encoder.cnn.state_dict().items():
        assert torch.equal(v, resnet[k]), k
    for k, v in loaded.encoder.swin_stages.state_dict().items():
        assert torch.equal(v, swin[f"layers.{k}"]), k
    assert not torch.equal(loaded.encoder.cnn.conv1.weight, model.encoder.cnn.conv1.weight)
    assert not torch.equal(
        loaded.encoder.swin_stages[0].blocks[0].attn.qkv.weight,
        model.encoder.swin_stages[0].blocks[0].attn.qkv.weight,
    )
