"""Every registered model (DyGLNet, its variants, the baselines) at its own input size, against
``baselines/reference_sizes.csv``, plus the one path for local pretrained weights (``models/pretrained.py``).

What is specific to one model lives in ``tests/test_baseline_<name>.py``.
"""

import csv
import importlib
from pathlib import Path

import pytest
import timm
import torch

from models import create_model, list_models, model_info
from models.complexity import count_params

REFERENCE = Path(__file__).parents[1] / "baselines" / "reference_sizes.csv"
ROWS = {row["name"]: row for row in csv.DictReader(REFERENCE.open())}


def _marked(name: str):
    # 224-only transformers: a forward/backward pass at 224 takes seconds on a CPU
    return pytest.param(name, marks=pytest.mark.slow) if model_info(name).fixed_input_size else name


# Sizes a model must accept beyond its registered minimum (non-square, not a power of two) and a size it must
# reject with a ValueError matching the message (the input sizes each model's docstring states). Fixed-size models
# reject any other size.
SIZE_CONTRACTS = {
    "unet": ((32, 48), (24, 32), "divisible by 16"),
    "attention_unet": ((48, 32), (32, 40), "divisible by 16"),
    "unetpp": ((32, 48), (24, 32), "divisible by 16"),
    "cmunext_l": ((32, 48), (32, 40), "divisible by 16"),
    "dcsaunet": ((36, 50), (8, 32), "16"),
    "m2snet": ((40, 56), (24, 64), "32"),
    "smp_unet_resnet34": ((40, 48), None, ""),
    "smp_unetplusplus_resnet34": ((32, 64), (48, 48), "divisible by 32"),
    "smp_deeplabv3plus_resnet50": ((16, 48), (24, 24), "divisible by 16"),
    "smp_segformer_mitb1": ((64, 32), (48, 48), "divisible by 32"),
}


@pytest.mark.parametrize("name", [_marked(n) for n in list_models()])
def test_registered_model(name):
    """Reference size and registered names where the CSV has a row; output shape and finite gradients at the
    model's size; the input sizes it accepts and rejects."""
    info = model_info(name)
    torch.manual_seed(0)
    model = create_model(name).train()
    if name in ROWS:
        row = ROWS[name]
        assert (info.display_name, info.family) == (row["paper_name"], row["family"])
        target = int(row["params_live"])
        assert abs(count_params(model) - target) <= float(row["params_tolerance"]) * target, count_params(model)
    size = info.fixed_input_size or info.min_input_size
    batch = 1 if info.fixed_input_size else 2  # two samples: BatchNorm meets 1 x 1 maps at the minimum size
    out = model(torch.randn(batch, 3, size, size))
    assert out.shape == (batch, 1, size, size)
    out.float().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)

    accepted, rejected, message = SIZE_CONTRACTS.get(name, (None, None, ""))
    if info.fixed_input_size:
        rejected, message = (size, size + 32), str(size)
    model.eval()
    with torch.no_grad():
        if accepted is not None:
            assert model(torch.randn(1, 3, *accepted)).shape == (1, 1, *accepted)
        if rejected is not None:
            with pytest.raises(ValueError, match=message):
                model(torch.randn(1, 3, *rejected))


def test_every_reference_row_is_registered():
    assert set(ROWS) <= set(list_models())


# --- local pretrained weights ---------------------------------------------------------------------

# model -> {backbone: the timm model whose ImageNet state dict it takes}; Swin-Unet's loading (which also
# fills its decoder) is tested in tests/test_baseline_swinunet.py
TIMM_BACKBONES = {
    "m2snet": {"res2net": "res2net50d"},
    "hiformer_b": {"resnet": "resnet50", "swin": "swin_tiny_patch4_window7_224"},
    "h2former": {"resnet": "resnet34"},
    "fatnet": {"resnet": "resnet34", "deit": "deit_tiny_distilled_patch16_224"},
    "befunet": {"swin": "swin_tiny_patch4_window7_224"},  # its PiDiNet: tests/test_baseline_befunet.py
    "smp_unet_resnet34": {"encoder": "resnet34"},
}
NO_BACKBONE = ["dyglnet", "dyglnet_wo_sa", "unet", "attention_unet", "unetpp", "dcsaunet", "cmunext_l", "missformer"]


def _backbone_modules(name: str) -> dict[str, str]:
    """Backbone name -> the submodule its weights go to, from the model's declaration."""
    if name.startswith("smp"):
        return {"encoder": "encoder"}  # smp_zoo declares it per architecture and encoder
    cfgs = importlib.import_module(model_info(name).module).PRETRAINED_CFGS
    return {backbone: cfg.module for backbone, cfg in cfgs.items()}


@pytest.mark.parametrize("name", sorted(TIMM_BACKBONES))
def test_loads_local_backbone_state_dicts(name, tmp_path):
    sources, files = {}, {}
    for i, (backbone, timm_name) in enumerate(TIMM_BACKBONES[name].items()):
        torch.manual_seed(i)
        sources[backbone] = timm.create_model(timm_name).state_dict()  # random weights, classifier included
        files[backbone] = tmp_path / f"{timm_name}.pth"
        torch.save(sources[backbone], files[backbone])
    modules = _backbone_modules(name)
    # one backbone: the path itself; several: a mapping
    model = create_model(name, pretrained_file=files if len(modules) > 1 else next(iter(files.values())))
    for backbone, source in sources.items():
        loaded = model.get_submodule(modules[backbone]).state_dict()
        assert loaded and all(torch.equal(v, source[k]) for k, v in loaded.items()), backbone


@pytest.mark.parametrize("name", NO_BACKBONE)
def test_models_without_a_pretrained_backbone_reject_a_file(name, tmp_path):
    with pytest.raises(ValueError, match=f"^{name} has no pretrained backbone"):
        create_model(name, pretrained_file=tmp_path / "weights.pth")


def test_pretrained_file_errors_name_the_file_and_the_backbone(tmp_path):
    missing = tmp_path / "missing.pth"
    with pytest.raises(FileNotFoundError, match=r"fatnet: weight file .*missing\.pth.* backbone 'deit'"):
        create_model("fatnet", pretrained_file={"deit": missing})
    with pytest.raises(ValueError, match=r"mapping \{'resnet': path, 'swin': path\}"):
        create_model("hiformer_b", pretrained_file=missing)  # two backbones: a path alone is ambiguous
    with pytest.raises(ValueError, match=r"unknown backbone\(s\) \['cnn'\]"):
        create_model("hiformer_b", pretrained_file={"cnn": missing})
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"m2snet backbone 'res2net'.*cannot read weight file .*garbage\.pth"):
        create_model("m2snet", pretrained_file=garbage)
    wrong = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), wrong)
    with pytest.raises(ValueError, match=r"m2snet backbone 'res2net'.*resnet18\.pth.* does not fit the backbone"):
        create_model("m2snet", pretrained_file={"res2net": wrong})
