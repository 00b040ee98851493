"""Swin-Unet: samples stay independent; Swin-T weights fill the encoder and are mirrored into the decoder."""

import re

import pytest
import timm
import torch

from baselines.swinunet import PRETRAINED_CFGS, swinunet
from models.pretrained import load_pretrained


@pytest.fixture(scope="module")
def swin_t_state():
    """A randomly initialised timm Swin-T (depths 2, 2, 6, 2, with its classifier), as timm ships it."""
    torch.manual_seed(1)
    source = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p))  # LayerNorms differ from their constant init too
    return source.state_dict()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return swinunet().eval()  # eval: no drop path


@pytest.mark.slow
def test_batch_samples_are_independent(model):
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[1:], model(x[1:]), rtol=1e-4, atol=1e-5)


def test_swin_t_weights_fill_the_encoder_and_are_mirrored_into_the_decoder(swin_t_state, tmp_path):
    path = tmp_path / "swin_tiny_patch4_window7_224.pth"
    torch.save(swin_t_state, path)
    loaded = swinunet(pretrained_file=path)
    assert all(torch.equal(v, swin_t_state[k]) for k, v in loaded.encoder.state_dict().items())
    # decoder stage of width 96 * 2**k starts from encoder stage k's blocks, as in the reference's load_from
    for stage, level in zip(loaded.decoder, (2, 1, 0), strict=True):
        for name, value in stage.stage.blocks.state_dict().items():
            assert torch.equal(value, swin_t_state[f"layers.{level}.blocks.{name}"])
    # the skip linears and patch-expanding layers keep their random initialisation
    torch.testing.assert_close(loaded.decoder[0].fuse.weight.std(), torch.tensor(0.02), atol=2e-3, rtol=0)


def test_accepts_original_microsoft_checkpoint_layout(model, swin_t_state, tmp_path):
    # original layout: merging at the end of a stage (layers.k.downsample), classifier "head", {"model": ...}
    original = {
        re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m[1]) - 1}.downsample", k).replace(
            "head.fc.", "head."
        ): v
        for k, v in swin_t_state.items()
    }
    path = tmp_path / "swin_tiny_patch4_window7_224.pth"
    torch.save({"model": original}, path)
    load_pretrained(model, PRETRAINED_CFGS["swin"], path, "swin")
    assert all(torch.equal(v, swin_t_state[k]) for k, v in model.encoder.state_dict().items())


def test_rejects_checkpoint_that_does_not_fit_the_encoder(model, swin_t_state, tmp_path):
    path = tmp_path / "partial.pth"
    torch.save({k: v for k, v in swin_t_state.items() if not k.startswith("layers.3.")}, path)
    with pytest.raises(ValueError, match=r"partial\.pth.*missing.*layers\.3"):
        load_pretrained(model, PRETRAINED_CFGS["swin"], path, "swin")
