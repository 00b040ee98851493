"""The model registry, ``python -m models``, and a forward/backward smoke test of every model."""

import json
import subprocess
import sys

import pytest
import torch

from models import create_model, list_models, model_info, register_model
from models.registry import _REGISTRY


def test_register_create_list_roundtrip():
    @register_model(family="CNN", display_name="Tiny")
    def _tiny_test_model(width: int = 4):
        return torch.nn.Conv2d(3, width, 1)

    try:
        assert "_tiny_test_model" in list_models()
        assert create_model("_tiny_test_model", width=2).out_channels == 2
        assert model_info("_tiny_test_model").display_name == "Tiny"
    finally:
        del _REGISTRY["_tiny_test_model"]


def test_unknown_model_names_the_registered_ones():
    with pytest.raises(KeyError, match="dyglnet"):
        create_model("no_such_model")


def test_duplicate_name_from_other_builder_rejected():
    with pytest.raises(ValueError, match="already registered"):

        @register_model(name="dyglnet")
        def another():
            return torch.nn.Identity()


def test_cli_json_lists_models_with_params_and_gflops():
    out = subprocess.run(
        [sys.executable, "-m", "models", "--json", "--size", "64", "dyglnet", "dyglnet_wo_sa"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["dyglnet", "dyglnet_wo_sa"]
    assert rows[0]["params"] == 9_980_098 and isinstance(rows[0]["params"], int)
    assert 0 < rows[0]["gflops"] < 11.234  # 64 x 64 costs less than 224 x 224


# Heavy models are tested at their own size in tests/test_baseline_<name>.py.
SMOKE_MODELS = [n for n in list_models() if model_info(n).min_input_size <= 64]


@pytest.mark.parametrize("name", SMOKE_MODELS)
def test_forward_backward_smoke(name):
    torch.manual_seed(0)
    model = create_model(name).train()
    size = max(64, model_info(name).min_input_size)
    x = torch.randn(2, 3, size, size)
    out = model(x)
    assert out.shape == (2, 1, size, size)
    out.float().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads), "some parameters received no gradient"
    assert all(torch.isfinite(g).all() for g in grads)
