"""Swin-Unet baseline (HuCaoFighting/Swin-Unet): size, shapes, gradients, fixed 224 input, Swin-T weights."""

import re

import pytest
import timm
import torch

from baselines.swinunet import swinunet
from models.registry import _REGISTRY


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return swinunet()


@pytest.fixture(scope="module")
def swin_t_state():
    """A randomly initialised timm Swin-T (depths 2, 2, 6, 2, with its classifier), as timm ships it."""
    torch.manual_seed(1)
    source = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p))  # LayerNorms differ from their constant init too
    return source.state_dict()


def test_parameter_count_matches_reference(model):
    assert sum(p.numel() for p in model.parameters()) == 27_168_132
    # encoder = timm SwinTransformer(embed 96, depths 2-2-2-2, heads 3-6-12-24, window 7), no classifier
    assert sum(p.numel() for p in model.encoder.parameters()) == 20_413_386


def test_registered_metadata():
    info = _REGISTRY["swinunet"]
    assert (info.family, info.display_name, info.fixed_input_size, info.min_input_size) == (
        "Transformer",
        "SwinUnet",
        224,
        224,
    )


def test_forward_backward_at_224(model):
    model.eval()  # deterministic (no drop path), so the batch can be compared with a single sample
    x = torch.randn(2, 3, 224, 224)
    both = model(x)
    assert both.shape == (2, 1, 224, 224)
    both.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        torch.testing.assert_close(both[1:].detach(), model(x[1:]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size", [(256, 256), (224, 192)])
def test_rejects_sizes_other_than_224(model, size):
    with pytest.raises(ValueError, match="224"):
        model(torch.randn(1, 3, *size))


def test_loads_local_swin_t_weights_into_encoder_and_mirrors_decoder(model, swin_t_state, tmp_path):
    path = tmp_path / "swin_tiny_patch4_window7_224.pth"
    torch.save(swin_t_state, path)
    loaded = swinunet(pretrained_file=str(path))

    encoder = loaded.encoder.state_dict()
    assert all(torch.equal(v, swin_t_state[k]) for k, v in encoder.items())
    assert not torch.equal(encoder["patch_embed.proj.weight"], model.encoder.state_dict()["patch_embed.proj.weight"])
    # decoder stage of width 96 * 2**k starts from encoder stage k's blocks, as in the reference's load_from
    for stage, level in zip(loaded.decoder, (2, 1, 0), strict=True):
        for name, value in stage.stage.blocks.state_dict().items():
            assert torch.equal(value, swin_t_state[f"layers.{level}.blocks.{name}"])
    # the skip linears and patch-expanding layers keep their random initialisation
    torch.testing.assert_close(loaded.decoder[0].fuse.weight.std(), torch.tensor(0.02), atol=2e-3, rtol=0)


def test_accepts_original_microsoft_checkpoint_layout(swin_t_state, tmp_path):
    # original layout: merging at the end of a stage (layers.k.downsample), classifier "head", {"model": ...}
    original = {
        re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m[1]) - 1}.downsample", k).replace(
            "head.fc.", "head."
        ): v
        for k, v in swin_t_state.items()
    }
    path = tmp_path / "swin_tiny_patch4_window7_224.pth"
    torch.save({"model": original}, path)
    encoder = swinunet(pretrained_file=str(path)).encoder.state_dict()
    assert all(torch.equal(v, swin_t_state[k]) for k, v in encoder.items())


def test_rejects_checkpoint_that_does_not_fit_the_encoder(swin_t_state, tmp_path):
    path = tmp_path / "partial.pth"
    torch.save({k: v for k, v in swin_t_state.items() if not k.startswith("layers.3.")}, path)
    with pytest.raises(ValueError, match="layers.3"):
        swinunet(pretrained_file=str(path))
