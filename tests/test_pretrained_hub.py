"""``pretrained=True``: ImageNet backbones from the Hugging Face Hub through timm and smp, without a network.

Each test builds a hub cache in huggingface_hub's layout (``models--ORG--NAME/refs/main``,
``models--ORG--NAME/snapshots/COMMIT/<files>``) holding a randomly initialised, perturbed copy of the backbone's
own state dict, points HF_HUB_CACHE at it with HF_HUB_OFFLINE=1, and checks that the model's backbones hold
exactly those tensors (after the model's own key mapping) while everything else keeps the initialisation of a
build without weights. huggingface_hub reads HF_HUB_CACHE and HF_HUB_OFFLINE once, at import, into
``huggingface_hub.constants``: in-process tests patch those too; the subprocess tests set only the environment.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
import timm
import torch
from huggingface_hub import constants
from safetensors.torch import save_file

from models import create_model
from models.hub import HubWeightsNotCachedError, smp_hub_weights, smp_pretrained_settings
from models.pretrained import (
    PretrainedWeightsError,
    architecture_kwargs,
    declared_hub_weights,
    loaded_weights,
    weights_source,
)
from models.registry import ModelArgumentError, list_models, model_info

REPO = Path(__file__).parents[1]
PAPER_PRETRAINED = REPO / "configs" / "paper-pretrained.yaml"

# model -> {backbone: timm model.tag}: what the authors' code starts from (docs/how-to/pretrained-weights.md)
TIMM_MODELS = {
    "m2snet": {"res2net": "res2net50d.in1k"},
    "swinunet": {"swin": "swin_tiny_patch4_window7_224.ms_in1k"},
    "hiformer_b": {"resnet": "resnet50.tv_in1k", "swin": "swin_tiny_patch4_window7_224.ms_in1k"},
    "h2former": {"resnet": "resnet34.tv_in1k"},
    "fatnet": {"resnet": "resnet34.tv_in1k", "deit": "deit_tiny_distilled_patch16_224.fb_in1k"},
    "befunet": {"swin": "swin_tiny_patch4_window7_224.ms_in1k"},
}
FAST = {"m2snet", "h2former"}  # the 224-only hybrids with Swin-T build for seconds each: slow
SMP_ENCODER = "resnet34"


def _commit(repo_id: str) -> str:
    return hashlib.sha1(repo_id.encode()).hexdigest()  # any 40-hex string is a commit to the cache


def add_to_cache(cache: Path, repo_id: str, files: dict[str, object], revision: str | None = None) -> Path:
    """``files`` (name -> state dict, or JSON-able dict for ``.json``) as snapshot ``revision`` (else a made-up
    commit that ``refs/main`` points to) of ``repo_id``; returns the snapshot folder."""
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    commit = revision or _commit(repo_id)
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if name.endswith(".json"):
            (snapshot / name).write_text(json.dumps(content))
        else:
            save_file({k: v.contiguous() for k, v in content.items()}, str(snapshot / name))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    return snapshot


def perturbed(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """A copy with every floating tensor moved off its initial value (variances kept positive)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state.items():
        if value.is_floating_point():
            noise = torch.randn(value.shape, generator=gen)
            value = (value + noise).abs() + 0.5 if key.endswith("running_var") else value + noise
        out[key] = value.clone()
    return out


class HubCache:
    """A hub cache filled on demand: ``tensors(repo_id)`` adds the repository (timm ``timm/<tag>`` or smp's
    resnet34 encoder) the first time and returns the tensors it holds."""

    def __init__(self, path: Path):
        self.path = path
        self._sources: dict[str, dict[str, torch.Tensor]] = {}

    def tensors(self, repo_id: str) -> dict[str, torch.Tensor]:
        if repo_id not in self._sources:
            seed = int(hashlib.sha1(repo_id.encode()).hexdigest()[:6], 16)
            torch.manual_seed(seed)
            smp_hub = smp_hub_weights(SMP_ENCODER)
            if repo_id == smp_hub.repo_id:
                state = perturbed(smp.encoders.get_encoder(SMP_ENCODER, weights=None).state_dict(), seed)
                files = {"config.json": {"mean": [0.485, 0.456, 0.406]}, "model.safetensors": state}
                add_to_cache(self.path, repo_id, files, smp_hub.revision)
            else:
                tag = repo_id.removeprefix("timm/")
                state = perturbed(timm.create_model(tag.split(".")[0]).state_dict(), seed)
                add_to_cache(self.path, repo_id, {"model.safetensors": state})
            self._sources[repo_id] = state
        return self._sources[repo_id]


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory) -> HubCache:
    return HubCache(tmp_path_factory.mktemp("hub"))


def use_cache(monkeypatch, cache: Path) -> None:
    """Offline, with ``cache`` as the hub cache, for this process (environment and huggingface_hub's constants)."""
    for name, value in {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}.items():
        monkeypatch.setenv(name, value)
        monkeypatch.setattr(constants, name, value if name == "HF_HUB_CACHE" else True)


def build_twice(name: str, **kwargs) -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor, torch.Tensor]:
    """(scratch, pretrained) builds from the same seed, and a random draw after each."""
    torch.manual_seed(0)
    scratch = create_model(name)
    after_scratch = torch.rand(4)
    torch.manual_seed(0)
    loaded = create_model(name, pretrained=True, **kwargs)
    return scratch, loaded, after_scratch, torch.rand(4)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in sorted(TIMM_MODELS)]
)
def test_timm_backbones_load_hub_weights_and_the_rest_keeps_its_init(name, hub_cache, monkeypatch):
    sources = {f"timm/{tag}": hub_cache.tensors(f"timm/{tag}") for tag in TIMM_MODELS[name].values()}
    cache = hub_cache.path
    use_cache(monkeypatch, cache)
    scratch, loaded, after_scratch, after_loaded = build_twice(name)
    assert torch.equal(after_scratch, after_loaded), "loading Hub weights changed the random stream"

    cfgs = importlib.import_module(model_info(name).module).PRETRAINED_CFGS
    backbone_keys = set()
    for backbone, tag in TIMM_MODELS[name].items():
        cfg = cfgs[backbone]
        module = loaded.get_submodule(cfg.module)
        expected = sources[f"timm/{tag}"]
        if cfg.filter_fn is not None:
            expected = cfg.filter_fn(dict(expected), module)
        own = module.state_dict()
        assert own and all(torch.equal(v, expected[k]) for k, v in own.items()), backbone
        backbone_keys |= {f"{cfg.module}.{k}" if cfg.module else k for k in own}
        record = loaded_weights(loaded)[backbone]
        snapshot_file = cache / f"models--timm--{tag}" / "snapshots" / _commit(f"timm/{tag}") / "model.safetensors"
        assert record["id"] == f"timm/{tag}" and record["commit"] == _commit(f"timm/{tag}")
        assert record["sha256"] == hashlib.sha256(snapshot_file.read_bytes()).hexdigest()
    assert set(loaded_weights(loaded)) == set(TIMM_MODELS[name])

    fresh = scratch.state_dict()
    rest = {k: v for k, v in loaded.state_dict().items() if k not in backbone_keys}
    if name == "swinunet":  # as in the reference's load_from, decoder stages start from the encoder's blocks
        for stage, level in zip(loaded.decoder, loaded.decoder_levels, strict=True):
            for key, value in stage.stage.blocks.state_dict().items():
                assert torch.equal(value, loaded.encoder.layers[level].blocks.state_dict()[key])
        rest = {k: v for k, v in rest.items() if ".stage.blocks." not in k}
    assert rest and all(torch.equal(v, fresh[k]) for k, v in rest.items())


@pytest.mark.parametrize("name", ["smp_unet_resnet34", "smp"])
def test_smp_encoder_loads_smps_hub_weights_and_the_decoder_keeps_its_init(name, hub_cache, monkeypatch):
    expected = hub_cache.tensors(smp_hub_weights(SMP_ENCODER).repo_id)
    use_cache(monkeypatch, hub_cache.path)
    scratch, loaded, after_scratch, after_loaded = build_twice(name)
    assert torch.equal(after_scratch, after_loaded)
    assert all(torch.equal(v, expected[k]) for k, v in loaded.encoder.state_dict().items())
    fresh = scratch.state_dict()
    rest = {k: v for k, v in loaded.state_dict().items() if not k.startswith("encoder.")}
    assert rest and all(torch.equal(v, fresh[k]) for k, v in rest.items())
    record = loaded_weights(loaded)["encoder"]
    assert record["id"] == smp_hub_weights(SMP_ENCODER).id and record["library"].startswith("smp ")


def test_a_local_file_takes_precedence_over_the_hub(hub_cache, monkeypatch, tmp_path):
    deit = hub_cache.tensors("timm/deit_tiny_distilled_patch16_224.fb_in1k")
    use_cache(monkeypatch, hub_cache.path)
    torch.manual_seed(5)
    own = timm.create_model("resnet34").state_dict()
    path = tmp_path / "resnet34.pth"
    torch.save(own, path)
    model = create_model("fatnet", pretrained=True, pretrained_file={"resnet": path})
    assert all(torch.equal(v, own[k]) for k, v in model.cnn.state_dict().items())
    assert all(torch.equal(v, deit[k]) for k, v in model.transformer.state_dict().items())
    assert {k: r["source"] for k, r in loaded_weights(model).items()} == {"resnet": "file", "deit": "hub"}


@pytest.mark.parametrize(
    ("name", "repo"), [("m2snet", "timm/res2net50d.in1k"), ("smp_unet_resnet34", "smp-hub/resnet34.imagenet")]
)
def test_a_cache_miss_offline_is_one_line_naming_id_cache_and_command(name, repo, monkeypatch, tmp_path):
    use_cache(monkeypatch, tmp_path)
    with pytest.raises(HubWeightsNotCachedError) as caught:
        create_model(name, pretrained=True)
    message = str(caught.value)
    assert isinstance(caught.value, ModelArgumentError) and "\n" not in message
    folder = tmp_path / ("models--" + repo.replace("/", "--"))
    for part in (repo, str(folder), "HF_HUB_OFFLINE=1", "python -m models fetch-weights"):
        assert part in message, (part, message)


def test_pretrained_is_refused_where_there_is_nothing_to_load():
    with pytest.raises(PretrainedWeightsError, match=r"^unet has no pretrained backbone .* pretrained must be false"):
        create_model("unet", pretrained=True)
    with pytest.raises(PretrainedWeightsError, match="pretrained must be true or false"):
        create_model("m2snet", pretrained="yes")
    # an smp encoder whose weights are not ImageNet's (smp's table lists 'ssl' and 'swsl' only)
    assert "imagenet" not in smp_pretrained_settings()["resnext101_32x4d"]
    with pytest.raises(ModelArgumentError, match=r"no 'imagenet' weights for encoder 'resnext101_32x4d'.*'ssl'"):
        create_model("smp", encoder="resnext101_32x4d", pretrained=True)
    with pytest.raises(ModelArgumentError, match="encoder_weights is not taken here: pass pretrained=True"):
        create_model("smp", encoder_weights="imagenet")


def test_declared_timm_weights_are_what_timm_resolves_and_fit_the_declared_backbones():
    """Each model's registry metadata hub_weights (read without torch) names every backbone of PRETRAINED_CFGS, and
    timm's own pretrained config puts each tag on timm/<tag>, unpinned, as weights_source reports."""
    from timm.models import get_pretrained_cfg

    with_backbones = []
    for name in list_models():
        module = importlib.import_module(model_info(name).module)
        cfgs = getattr(module, "PRETRAINED_CFGS", {})
        if not cfgs or model_info(name).smp_encoder is not None:
            continue
        with_backbones.append(name)
        declared = model_info(name).hub_weights
        assert declared == {k: c.hub for k, c in cfgs.items()}, name
        for tag in filter(None, declared.values()):
            cfg = get_pretrained_cfg(tag)
            assert cfg.hf_hub_id == f"timm/{tag}" and cfg.hf_hub_filename is None, (tag, cfg.hf_hub_id)
            assert declared_hub_weights(name)[next(k for k, v in declared.items() if v == tag)].id == f"timm/{tag}"
    assert sorted(with_backbones) == sorted(TIMM_MODELS)
    assert {k: {b: t for b, t in v.items() if t} for k, v in TIMM_MODELS.items()} == {
        n: {b: t for b, t in model_info(n).hub_weights.items() if t} for n in TIMM_MODELS
    }


def test_smp_settings_read_from_source_equal_smps_own_tables():
    assert smp_pretrained_settings() == {k: v["pretrained_settings"] for k, v in smp.encoders.encoders.items()}


def test_weights_source():
    assert weights_source("unet", {}) is None
    assert weights_source("m2snet", {"pretrained": False}) is None
    assert weights_source("hiformer_b", {"pretrained": True}) == {
        "kind": "hub",
        "ids": {"resnet": "timm/resnet50.tv_in1k", "swin": "timm/swin_tiny_patch4_window7_224.ms_in1k"},
    }
    assert weights_source("hiformer_b", {"pretrained": True, "pretrained_file": {"swin": "w/swin.pth"}}) == {
        "kind": "hub+file",
        "ids": {"resnet": "timm/resnet50.tv_in1k"},
        "files": {"swin": "w/swin.pth"},
    }
    assert weights_source("m2snet", {"pretrained_file": "w/r2.pth"}) == {
        "kind": "file",
        "files": {"res2net": "w/r2.pth"},
    }
    assert weights_source("befunet", {"pretrained": True}) == {
        "kind": "hub",
        "ids": {"swin": "timm/swin_tiny_patch4_window7_224.ms_in1k"},
    }
    settings = smp.encoders.encoders["mit_b1"]["pretrained_settings"]["imagenet"]
    assert weights_source("smp", {"arch": "Segformer", "encoder": "mit_b1", "pretrained": True}) == {
        "kind": "hub",
        "ids": {"encoder": f"{settings['repo_id']}@{settings['revision']}"},
    }
    with pytest.raises(PretrainedWeightsError):
        weights_source("unet", {"pretrained": True})


def test_weights_source_imports_no_torch():
    code = (
        "import sys\nfrom models.pretrained import weights_source\n"
        "print(weights_source('fatnet', {'pretrained': True})['ids']['deit'])\n"
        "print(weights_source('smp_unet_resnet34', {'pretrained': True})['ids']['encoder'])\n"
        "assert not {'torch', 'timm', 'segmentation_models_pytorch'} & set(sys.modules), 'imported torch'\n"
    )
    run = _run([], {}, code)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["timm/deit_tiny_distilled_patch16_224.fb_in1k", smp_hub_weights(SMP_ENCODER).id]


def test_architecture_kwargs_drop_weight_arguments():
    kwargs = {"pretrained": True, "pretrained_file": "w.pth", "arch": "FPN"}
    assert architecture_kwargs(kwargs) == {"arch": "FPN"}


def _run(args: list[str], env: dict[str, str], code: str | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "models", *args]
    return subprocess.run(cmd, cwd=REPO, env={**base, "PYTHONPATH": str(REPO), **env}, capture_output=True, text=True)


def test_fetch_weights_dry_run_lists_every_id_without_torch(tmp_path):
    """The paper-pretrained profile's ids, revisions and cache folders, with HF_HOME alone setting the cache."""
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['models', 'fetch-weights', '--params', {str(PAPER_PRETRAINED)!r}, '--dry-run']\n"
        "try:\n    runpy.run_module('models', run_name='__main__')\nexcept SystemExit as e:\n    assert not e.code, e\n"
        "assert 'torch' not in sys.modules, 'dry run imported torch'\n"
    )
    run = _run([], {"HF_HOME": str(tmp_path)}, code)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[0] == f"Hugging Face hub cache: {tmp_path / 'hub'}"
    expected = {  # the profile's pretrained entries (<baseline>_in1k; the baselines' own keys train from scratch)
        "timm/res2net50d.in1k": ["m2snet_in1k"],
        "timm/swin_tiny_patch4_window7_224.ms_in1k": ["swinunet_in1k", "hiformer_b_in1k", "befunet_in1k"],
        "timm/resnet50.tv_in1k": ["hiformer_b_in1k"],
        "timm/resnet34.tv_in1k": ["h2former_in1k", "fatnet_in1k"],
        "timm/deit_tiny_distilled_patch16_224.fb_in1k": ["fatnet_in1k"],
    }
    listed = {line.split()[0]: line for line in lines[1:]}
    assert set(listed) == set(expected)
    for repo, keys in expected.items():
        folder = tmp_path / "hub" / ("models--" + repo.replace("/", "--"))
        assert f"revision main, not pinned  to fetch  {folder}  [timm; {', '.join(keys)}]" in listed[repo]


def test_fetch_weights_with_everything_cached_downloads_nothing(hub_cache, tmp_path):
    hub_cache.tensors("timm/resnet34.tv_in1k")
    hub_cache.tensors(smp_hub_weights(SMP_ENCODER).repo_id)
    cache = hub_cache.path
    params = tmp_path / "params.yaml"
    params.write_text(
        "models:\n"
        "  h2former: {model_kwargs: {pretrained: true}}\n"
        "  r34: {model: smp, model_kwargs: {pretrained: true}}\n"
    )
    run = _run(["fetch-weights", "--params", str(params)], {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr
    assert "0 fetched, 2 already cached" in run.stdout
    assert sum(" cached " in line for line in run.stdout.splitlines()) == 2


def test_fetch_weights_offline_with_a_miss_is_one_error_line(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("models:\n  m2snet: {model_kwargs: {pretrained: true}}\n")
    run = _run(["fetch-weights", "--params", str(params)], {"HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.startswith("error: 1 of these weights are not in the hub cache") and run.stderr.count("\n") == 1
    params.write_text("models:\n  unet: {model_kwargs: {pretrained: true}}\n")
    run = _run(["fetch-weights", "--params", str(params), "--dry-run"], {"HF_HUB_CACHE": str(tmp_path)})
    assert run.returncode == 2 and run.stderr.startswith(f"error: {params}: models.unet: unet: no backbone")


def test_environment_alone_points_the_libraries_at_the_cache(hub_cache):
    """A fresh process with HF_HUB_CACHE and HF_HUB_OFFLINE in its environment (nothing patched) loads the cached
    tensors: timm and smp honour the variables."""
    source = hub_cache.tensors("timm/resnet34.tv_in1k")
    cache = hub_cache.path
    code = (
        "import torch\nfrom models import create_model\n"
        "m = create_model('h2former', pretrained=True)\n"
        "print(float(m.cnn.layer1[0].conv1.weight.double().sum()))\n"
    )
    run = _run([], {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}, code)
    assert run.returncode == 0, run.stderr
    expected = float(source["layer1.0.conv1.weight"].double().sum())
    assert float(run.stdout.strip().splitlines()[-1]) == pytest.approx(expected, rel=0, abs=1e-9)


def test_train_json_records_the_weights_each_backbone_started_from(hub_cache, monkeypatch, tmp_path, make_prepared):
    """A training run of an entry with ``pretrained: true`` writes the Hub snapshot it read into train.json
    (``weights``); the same model from scratch writes an empty record."""
    from engine.params import TrainConfig
    from pipeline.train import train

    hub = smp_hub_weights(SMP_ENCODER)
    hub_cache.tensors(hub.repo_id)
    use_cache(monkeypatch, hub_cache.path)
    data = make_prepared(tmp_path / "prepared", n_train=8, n_val=2, n_test=2)
    runs = {}
    for key, kwargs in (("smp_r34", {}), ("smp_r34_in1k", {"pretrained": True})):
        cfg = TrainConfig(
            data=str(data), model=key, builder="smp_unet_resnet34", out=str(tmp_path / key), model_kwargs=kwargs,
            epochs=1, batch_size=4, img_size=32, warmup_epochs=0, num_workers=0, compile=False,
        )  # fmt: skip
        train(cfg)
        runs[key] = json.loads((tmp_path / key / "train.json").read_text())["weights"]
    assert runs["smp_r34"] == {}
    snapshot = hub_cache.path / ("models--" + hub.repo_id.replace("/", "--")) / "snapshots" / hub.revision
    assert runs["smp_r34_in1k"] == {
        "encoder": {
            "source": "hub",
            "library": f"smp {smp.__version__}",
            "name": SMP_ENCODER,
            "id": hub.id,
            "revision": hub.revision,
            "commit": hub.revision,
            "file": "model.safetensors",
            "sha256": hashlib.sha256((snapshot / "model.safetensors").read_bytes()).hexdigest(),
        }
    }


def test_fingerprint_hashes_the_weights_source_and_keeps_scratch_entries_code_only(tmp_path, monkeypatch):
    """A ``models:`` entry's fingerprint: the code hash alone from scratch (so scratch entries never rerun because
    of this), else code + weights_source + file contents, so a new Hub id or pinned revision (a library upgrade)
    or a replaced file reruns the entries that start from it."""
    import pipeline.fingerprint as fp
    from models.files import model_sources

    params = tmp_path / "params.yaml"
    weights = tmp_path / "r34.pth"
    weights.write_bytes(b"one")
    params.write_text(
        "models:\n"
        "  h2former: {}\n"
        "  h2former_in1k: {model: h2former, model_kwargs: {pretrained: true}}\n"
        f"  h2former_file: {{model: h2former, model_kwargs: {{pretrained_file: {str(weights)!r}}}}}\n"
        "  smp_r34_in1k: {model: smp_unet_resnet34, model_kwargs: {pretrained: true}}\n"
    )
    first = fp.fingerprints(str(params))["models"]
    code = fp.files_digest(model_sources("h2former"))
    assert first["h2former"] == code and len({first["h2former"], first["h2former_in1k"], first["h2former_file"]}) == 3
    weights.write_bytes(b"two")
    second = fp.fingerprints(str(params))["models"]
    assert second["h2former_file"] != first["h2former_file"]
    assert {k: v for k, v in second.items() if k != "h2former_file"} == {
        k: v for k, v in first.items() if k != "h2former_file"
    }

    real = fp.weights_source

    def other_revision(builder, kwargs):  # as if smp pinned another revision of its resnet34 weights
        source = real(builder, kwargs)
        if builder == "smp_unet_resnet34" and source:
            source = {**source, "ids": {"encoder": source["ids"]["encoder"].split("@")[0] + "@" + "0" * 40}}
        return source

    monkeypatch.setattr(fp, "weights_source", other_revision)
    third = fp.fingerprints(str(params))["models"]
    assert third["smp_r34_in1k"] != second["smp_r34_in1k"] and third["h2former_in1k"] == second["h2former_in1k"]

    params.write_text("models:\n  unet: {model_kwargs: {pretrained: true}}\n")  # nothing to load: one line, exit 2
    out = tmp_path / "fingerprints.yaml"
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.fingerprint", "--params", str(params), "--out", str(out)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and not out.exists()
    assert run.stderr == (
        f"error: {params}: models.unet: unet: no backbone of it has weights on the Hugging Face Hub; "
        "pretrained must be false\n"
    )
