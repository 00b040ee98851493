"""DyGLNet against the authors' release: size, cost, the reference fixture, input sizes, variants."""

from pathlib import Path

import pytest
import torch

from models import create_model, list_models, model_info
from models.complexity import count_params, fvcore_gflops
from models.dyglnet import (
    ABLATION_VARIANTS,
    DyGLNet,
    DyGLNetConfig,
    authors_key_to_ours,
    config_from_authors,
    load_authors_state_dict,
)

FIXTURE = Path(__file__).parent / "fixtures" / "dyglnet_authors_reference.pt"


@pytest.fixture(scope="module")
def reference():
    return torch.load(FIXTURE, weights_only=True)


def test_default_parameter_count_matches_release():
    assert count_params(DyGLNet()) == 9_980_098


def test_fvcore_flops_match_release():
    gflops = fvcore_gflops(DyGLNet(), 224)
    assert abs(gflops - 11.234) / 11.234 < 0.01, gflops


def test_default_config_is_released_configuration():
    cfg = DyGLNetConfig()
    assert cfg.widths == (128, 224, 320)
    assert cfg.attn_channels == (32, 48, 68)
    assert cfg.qk_dim == (16, 16, 16)
    assert cfg.depths == (2, 4, 5)
    assert cfg.mixer_stages == (False, True, True)


def test_reference_outputs_reproduced_in_eval_then_train_mode(reference):
    model = DyGLNet(config_from_authors(reference["config"]))
    load_authors_state_dict(model, reference["state_dict"])
    x = reference["input"].float()
    model.eval()
    with torch.no_grad():
        eval_diff = (model(x) - reference["output_eval"]).abs().max().item()
    model.train()
    with torch.no_grad():
        train_diff = (model(x) - reference["output_train"]).abs().max().item()
    assert eval_diff < 1e-4
    assert train_diff < 1e-4


def test_authors_loader_uses_every_key_and_fills_every_tensor(reference):
    model = DyGLNet(config_from_authors(reference["config"]))
    mapped = {authors_key_to_ours(k) for k in reference["state_dict"]}
    assert mapped == set(model.state_dict())
    assert len(mapped) == len(reference["state_dict"])  # no two source keys collapse onto one


def test_authors_loader_lists_unused_and_unfilled_keys(reference):
    sd = dict(reference["state_dict"])
    sd["blocks9.0.mystery.weight"] = torch.zeros(1)
    del sd["final_conv.bias"]
    model = DyGLNet(config_from_authors(reference["config"]))
    with pytest.raises(KeyError) as err:
        load_authors_state_dict(model, sd)
    assert "blocks9.0.mystery.weight" in str(err.value)
    assert "head.bias" in str(err.value)


def test_authors_loader_reports_shape_mismatch(reference):
    model = DyGLNet()  # depths 2, 4, 5: the fixture's depth-1 weights fit, but blocks are missing
    with pytest.raises(KeyError, match="left unfilled"):
        load_authors_state_dict(model, reference["state_dict"])
    narrow = DyGLNet(config_from_authors(reference["config"]), widths=(96, 224, 320))
    with pytest.raises(KeyError, match="shape mismatches"):
        load_authors_state_dict(narrow, reference["state_dict"])


@pytest.mark.parametrize("hw", [(16, 16), (32, 48), (64, 96), (80, 32)])
def test_any_multiple_of_16_works(hw):
    model = DyGLNet(depths=(1, 1, 1)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *hw))
    assert out.shape == (1, 1, *hw)


@pytest.mark.parametrize("hw", [(65, 64), (64, 72), (8, 8)])
def test_other_sizes_raise_clear_error(hw):
    model = DyGLNet(depths=(1, 1, 1))
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.randn(1, 3, *hw))


def test_variants_are_configurations_of_the_same_class():
    for name, settings in ABLATION_VARIANTS.items():
        model = create_model(name)
        assert type(model) is DyGLNet
        assert model_info(name).family == "Ablation"
        for key, value in settings.items():
            assert getattr(model.cfg, key) == value
    assert set(ABLATION_VARIANTS) <= set(list_models("dyglnet_*"))


EXPECTED_VARIANT_PARAMS = {  # the models reference counts them at build time
    "dyglnet_w_bilinear": 9_956_418,
    "dyglnet_w_tconv": 10_216_002,
    "dyglnet_wo_dyt": 9_980_089,
    "dyglnet_wo_dc": 9_915_286,
    "dyglnet_wo_sa": 9_928_025,
    "dyglnet_split_dc": 10_425_218,
    "dyglnet_split_sa": 8_932_274,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_VARIANT_PARAMS))
def test_variant_parameter_counts(name):
    assert count_params(create_model(name)) == EXPECTED_VARIANT_PARAMS[name]


def test_variant_switches_change_the_modules():
    assert not any(type(m).__name__ == "DynamicUpsample" for m in create_model("dyglnet_w_tconv").modules())
    assert not any(type(m).__name__ == "DyT" for m in create_model("dyglnet_wo_dyt").modules())
    assert not any(type(m).__name__ == "SingleHeadAttention" for m in create_model("dyglnet_wo_sa").modules())
    wo_dc = create_model("dyglnet_wo_dc")
    assert all(len(s.blocks[0].mixer.local.dilated) == 0 for s in wo_dc.stages[1:])
    assert all(len(u.fuse.dilated) == 3 for u in wo_dc.decoder)


def test_bad_config_rejected():
    with pytest.raises(ValueError, match="attn_channels"):
        DyGLNetConfig(attn_channels=(32, 48, 400))
    with pytest.raises(ValueError, match="upsampler"):
        DyGLNetConfig(upsampler="nearest")
