"""The model registry: names and metadata read from the source, lazy imports, per-model source files."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models import UnknownModelError, create_model, list_models, model_info, register_model
from models.files import model_sources
from models.registry import _BUILDERS, _EXTRA

REPO = Path(__file__).resolve().parents[1]


def test_register_create_list_roundtrip():
    @register_model(family="CNN", display_name="Tiny")
    def _tiny_test_model(width: int = 4):
        return torch.nn.Conv2d(3, width, 1)

    try:
        assert "_tiny_test_model" in list_models()
        assert create_model("_tiny_test_model", width=2).out_channels == 2
        assert model_info("_tiny_test_model").display_name == "Tiny"
    finally:
        del _BUILDERS["_tiny_test_model"], _EXTRA["_tiny_test_model"]


def test_unknown_model_names_the_registered_ones():
    with pytest.raises(UnknownModelError, match="dyglnet"):
        create_model("no_such_model")


def test_duplicate_name_from_other_builder_rejected():
    with pytest.raises(ValueError, match="already registered"):

        @register_model(name="dyglnet")
        def another():
            return torch.nn.Identity()


def test_metadata_is_read_from_the_source_without_importing_torch():
    script = (
        "import sys; from models import list_models, model_info; from models.files import model_sources;"
        "names = list_models(); info = model_info('befunet'); deps = model_sources('unet');"
        "print(len(names), info.family, info.fixed_input_size, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, cwd=REPO)
    count, family, fixed, torch_loaded = out.stdout.split()
    assert int(count) >= 20 and family == "Hybrid" and fixed == "224" and torch_loaded == "False"


def test_every_scanned_model_is_registered_by_its_module():
    # the source index and the decorators that run on import must agree on every name
    for name in list_models():
        info = model_info(name)
        if info.module.startswith(("models.", "baselines.")):
            __import__(info.module)
            assert name in _BUILDERS, f"{info.module} does not register {name}"


def test_model_sources_follow_first_party_imports():
    deps = model_sources("dyglnet_wo_sa")
    assert deps == sorted(deps)
    assert {"models/dyglnet.py", "models/registry.py", "models/shapes.py", "models/__init__.py"} <= set(deps)
    assert not any(d.startswith("pipeline/") or (d.startswith("baselines/") and "__init__" not in d) for d in deps)
    unet = model_sources("unet")
    assert "baselines/unet.py" in unet and "baselines/__init__.py" in unet
    assert not any("dyglnet" in d or "befunet" in d for d in unet)


@pytest.mark.slow
def test_model_sources_cover_every_imported_module():
    # what actually gets imported when a model is built must be among its declared source files
    script = (
        "import sys, json; from models import create_model;"
        "create_model(sys.argv[1]);"
        "mods = [m.__file__ for n, m in sys.modules.items() if n.split('.')[0] in ('core', 'models', 'baselines',"
        " 'datasets', 'engine', 'pipeline', 'reports') and getattr(m, '__file__', None)];"
        "from models.files import model_sources;"  # after the snapshot: computing the list is not building
        "print(json.dumps([mods, model_sources(sys.argv[1])]))"
    )
    for name in ("dyglnet", "unet", "befunet"):
        out = subprocess.run([sys.executable, "-c", script, name], check=True, capture_output=True, text=True, cwd=REPO)
        imported, declared = json.loads(out.stdout)
        imported = {str(Path(f).resolve().relative_to(REPO)) for f in imported}
        assert imported <= set(declared), imported - set(declared)


@pytest.mark.slow
def test_cli_deps_and_json():
    deps = subprocess.run(
        [sys.executable, "-m", "models", "--deps", "unet"], check=True, capture_output=True, text=True, cwd=REPO
    ).stdout.split()
    assert deps == model_sources("unet")
    bad = subprocess.run([sys.executable, "-m", "models", "--deps", "nope"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "unknown model 'nope'" in bad.stderr and "Traceback" not in bad.stderr
    rows = json.loads(
        subprocess.run(
            [sys.executable, "-m", "models", "--json", "--size", "64", "dyglnet", "dyglnet_wo_sa"],
            check=True,
            capture_output=True,
            text=True,
            cwd=REPO,
        ).stdout
    )
    assert [r["name"] for r in rows] == ["dyglnet", "dyglnet_wo_sa"]
    assert 0 < rows[0]["gflops"] < 11.234  # 64 x 64 costs less than 224 x 224
