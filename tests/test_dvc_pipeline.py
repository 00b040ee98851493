"""The DVC graph reruns exactly what a change touches (docs/explanation/fingerprints.md).

Each case works on a copy of the repository whose pipeline is materialised without training: every
stage's outputs are stand-in files recorded with ``dvc commit``, which stores the same dependency and
params hashes a real run would. The case then edits the code and asks ``dvc status`` which stages are
out of date (after the cheap ``fingerprint`` stage has rerun, as ``dvc repro`` does first).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.imports import module_sources
from core.paths import FIRST_PARTY
from models import list_models
from models.files import model_sources
from pipeline.fingerprint import STAGE_MODULES, adapter_files, stage_sources

REPO = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).with_name("dvc"))
MODELS = ["dyglnet", "dyglnet_wo_sa", "unet", "unetpp"]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # Python's default: write bytecode next to the sources
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kw)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _status(work: Path) -> set[str]:
    _run([DVC, "repro", "--single-item", "fingerprint"], work)
    return set(json.loads(_run([DVC, "status", "--json"], work).stdout))


def _materialise(work: Path) -> None:
    """Stand-in outputs for every stage, recorded in dvc.lock by `dvc commit`."""
    _run([DVC, "repro", "--single-item", "fingerprint"], work)
    for path in [
        "data/raw/synthetic/images/a.png",
        "data/raw/shifted/images/a.png",
        "data/prepared/synthetic/split.json",
        "data/prepared/shifted/split.json",
        "output/quick/comparison.md",  # the report's outputs are named by the profile
        "metrics/quick.json",
    ]:
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text("{}")
    for model in MODELS:
        _stand_in(work, model)
    _run([DVC, "commit", "--force", "--quiet"], work)


def _stand_in(work: Path, model: str) -> None:
    """Stand-in outputs of one model's train, evaluate and complexity stages."""
    run, res = work / f"runs/synthetic/{model}/seed42", work / f"results/synthetic/{model}/seed42"
    for f in (run / "best.pt", run / "train.json", run / "log.csv", res / "per_image.csv", res / "metrics.json"):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(f"{model}\n")
    (res / "timing.json").write_text("{}")
    (res / "pred").mkdir(exist_ok=True)
    (res / "pred" / "a.png").write_text("x")
    for pair in _pairs(work):
        moved = work / f"results/transfer/{pair}/{model}/seed42"
        (moved / "pred").mkdir(parents=True, exist_ok=True)
        for name in ("per_image.csv", "metrics.json", "timing.json", "pred/a.png"):
            (moved / name).write_text(f"{model} {pair}\n")
    (work / f"results/complexity/{model}.json").parent.mkdir(parents=True, exist_ok=True)
    (work / f"results/complexity/{model}.json").write_text("{}")


def _pairs(work: Path) -> list[str]:
    """The ``<source>-<target>`` folder names of params.yaml's transfer pairs."""
    return [f"{a}-{b}" for a, b in yaml.safe_load((work / "params.yaml").read_text())["transfer"]["pairs"]]


def _copy_repo(work: Path, datasets: dict, models: list[str], transfer: bool = False) -> None:
    """The repository's tracked and new files (no generated ones) in ``work``, a git repo, with these datasets
    and models in params.yaml (and the default's transfer pairs when ``transfer``, else none)."""
    files = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], REPO).stdout.split("\n")
    for name in filter(None, files):
        src = REPO / name
        generated = name.startswith(("runs/", "results/", "output/", "data/")) or name in ("dvc.lock", "metrics.json")
        skip = generated or (name.startswith("reports/") and not name.endswith(".py") and "/paper/" not in name)
        if src.is_file() and not skip:
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, work / name)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["datasets"] = datasets
    params["models"] = {m: {} for m in models}
    if not transfer:
        params["transfer"] = {"pairs": [], "test_only": {}}
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True), encoding="utf-8")
    _run(["git", "init", "-q"], work)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("repo")
    _copy_repo(work, {"synthetic": {"raw": "data/raw/synthetic"}}, MODELS, transfer=True)
    _materialise(work)
    assert _status(work) == set(), "freshly materialised pipeline is not clean"
    return work


def _stages(kind: str, model: str) -> set[str]:
    if kind == "complexity":
        return {f"complexity@{model}"}
    return {f"transfer@pair0-{model}-42"} if kind == "transfer" else {f"{kind}@synthetic-{model}-42"}


def _model_stages(*models: str) -> set[str]:
    return {s for m in models for k in ("train", "evaluate", "transfer", "complexity") for s in _stages(k, m)}


def _trained_stages(*models: str) -> set[str]:
    """A model's stages that depend on its weights: all but complexity@M (architecture only)."""
    return {s for m in models for k in ("train", "evaluate", "transfer") for s in _stages(k, m)}


def _edit(work: Path, path: str, text: str):
    """Append ``text`` to a file; returns a function that restores it."""
    target = work / path
    old = target.read_bytes()
    target.write_text(old.decode() + text)

    def restore():
        target.write_bytes(old)
        assert _status(work) == set()

    return restore


def test_bytecode_and_editor_files_change_nothing(work):
    _run([sys.executable, "-c", "import models.dyglnet, baselines.unet, engine.params, datasets.reader"], work)
    assert list((work / "baselines").glob("__pycache__/*.pyc")), "bytecode was not written"
    (work / "models" / ".dyglnet.py.swp").write_text("swap")
    (work / "pipeline" / ".DS_Store").write_text("x")
    assert _status(work) == set()


CODE = "_FINGERPRINT_PROBE = 1\n"  # a line of code that runs: it changes the syntax tree


@pytest.mark.parametrize(
    "path", ["models/dyglnet.py", "baselines/unet.py", "engine/metrics.py", "datasets/adapters/synthetic.py"]
)
def test_comment_docstring_or_reformat_reruns_nothing(work, path):
    target = work / path
    old = target.read_text()
    edited = "# a comment at the top\n" + old.replace("\n\n\n", "\n\n\n\n") + "\n# and one at the end\n"
    edited = edited.replace('"""', '"""Changed docstring. ', 1)  # the module docstring
    assert edited != old
    target.write_text(edited)
    assert _status(work) == set()
    target.write_text(old)
    assert _status(work) == set()


def test_code_change_in_one_baseline_reruns_only_that_model(work):
    restore = _edit(work, "baselines/unet.py", CODE)
    assert _status(work) == _model_stages("unet") | {"report"}
    restore()


def test_change_in_dyglnet_reruns_dyglnet_and_its_variants(work):
    restore = _edit(work, "models/dyglnet.py", CODE)
    assert _status(work) == _model_stages("dyglnet", "dyglnet_wo_sa") | {"report"}
    restore()


def test_change_in_metrics_reruns_training_and_evaluation(work):
    restore = _edit(work, "engine/metrics.py", CODE)
    expected = {s for m in MODELS for k in ("train", "evaluate", "transfer") for s in _stages(k, m)}
    changed = _status(work)
    assert expected <= changed and not any(s.startswith(("complexity@", "prepare@")) for s in changed)
    restore()


def test_change_in_a_figure_reruns_only_the_report(work):
    figures = next(p for p in ("reports/figures.py", "reports/bubble.py") if (work / p).exists())
    restore = _edit(work, figures, CODE)
    assert _status(work) == {"report"}
    restore()


def test_code_change_in_an_unused_dataset_adapter_reruns_nothing(work):
    restore = _edit(work, "datasets/adapters/ph2.py", CODE)
    assert _status(work) == set()
    restore()


def test_change_in_the_synthetic_generator_reruns_synthesize_and_what_follows(work):
    restore = _edit(work, "datasets/synthetic.py", CODE)
    assert _status(work) == {"synthesize@synthetic", "synthesize@shifted"}  # what follows sees new data once rerun
    restore()


def test_the_transfer_stages_read_the_checkpoints_and_the_test_only_target(work):
    assert _pairs(work) == ["synthetic-shifted"]
    restore = _edit(work, "datasets/adapters/shifted.py", CODE)
    assert _status(work) == {"prepare_test_only@shifted"}
    restore()
    restore = _edit(work, "pipeline/transfer.py", CODE)
    assert _status(work) == {f"transfer@pair0-{m}-42" for m in MODELS}  # and the report once they have rerun
    restore()


def test_a_new_transfer_pair_reruns_only_its_own_stages(work):
    params_file = work / "params.yaml"
    old = params_file.read_text()
    params = yaml.safe_load(old)
    params["transfer"]["pairs"].append(["synthetic", "folder"])  # at the end: the first pair keeps its stage names
    params["transfer"]["test_only"]["folder"] = {"raw": "data/raw/folder"}
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    new = {f"transfer@pair1-{m}-42" for m in MODELS}
    assert _status(work) == {"prepare_test_only@folder", *new, "report"}
    params_file.write_text(old)
    assert _status(work) == set()


def test_change_in_the_used_adapter_reruns_its_prepare_stage(work):
    restore = _edit(work, "datasets/adapters/synthetic.py", CODE)
    assert _status(work) == {"prepare@synthetic"}
    restore()


@pytest.mark.parametrize("path", ["pipeline/grid/__init__.py", "pipeline/tools/bench.py", "pipeline/predict.py"])
def test_code_change_in_a_tool_reruns_nothing(work, path):
    restore = _edit(work, path, CODE)
    assert _status(work) == set()
    restore()


def test_new_baseline_reruns_only_its_own_stages(work):
    (work / "baselines" / "tiny_new.py").write_text(
        "import torch.nn as nn\nfrom models.registry import register_model\n\n\n"
        '@register_model(family="CNN", display_name="TinyNew", min_input_size=16)\n'
        "def tiny_new(**kwargs):\n    return nn.Conv2d(3, 1, 3, padding=1)\n"
    )
    params_file = work / "params.yaml"
    old = params_file.read_text()
    params = yaml.safe_load(old)
    params["models"]["tiny_new"] = {}
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    assert _status(work) == _model_stages("tiny_new") | {"report"}
    params_file.write_text(old)
    (work / "baselines" / "tiny_new.py").unlink()
    assert _status(work) == set()


def test_replacing_a_weight_file_reruns_only_the_model_that_starts_from_it(work):
    params_file, weights = work / "params.yaml", work / "weights" / "backbone.pth"
    old = params_file.read_text()
    params = yaml.safe_load(old)
    params["models"]["unet"] = {"model_kwargs": {"pretrained_file": "weights/backbone.pth"}}
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    weights.write_bytes(b"first weights")
    assert _stages("train", "unet") <= _status(work)  # the params entry changed
    _run([DVC, "commit", "--force", "--quiet"], work)  # as if those stages had rerun
    assert _status(work) == set()
    weights.write_bytes(b"other weights")  # same path, new contents
    assert _status(work) == _trained_stages("unet") | {"report"}  # complexity@unet does not read weights
    params_file.write_text(old)
    weights.unlink()
    _status(work)
    _run([DVC, "commit", "--force", "--quiet"], work)
    assert _status(work) == set()


def test_switching_one_models_initialisation_reruns_that_model_alone(work):
    params_file, weights = work / "params.yaml", work / "weights" / "resnet34.pth"
    old = params_file.read_text()
    params = yaml.safe_load(old)

    def set_models(**entries) -> None:
        params["models"].update(entries)
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))

    def as_if_rerun() -> None:
        _run([DVC, "commit", "--force", "--quiet"], work)
        assert _status(work) == set()

    set_models(swinunet={}, h2former={})  # two baselines with backbones, from scratch
    for model in ("swinunet", "h2former"):
        _stand_in(work, model)
    _status(work)
    as_if_rerun()
    set_models(swinunet={"model_kwargs": {"pretrained": True}})  # scratch -> the Hub's ImageNet weights
    assert _status(work) == _trained_stages("swinunet") | {"report"}  # the architecture is the same
    as_if_rerun()
    weights.write_bytes(b"resnet34 weights")
    set_models(h2former={"model_kwargs": {"pretrained_file": "weights/resnet34.pth"}})  # -> a local file
    assert _status(work) == _trained_stages("h2former") | {"report"}
    as_if_rerun()
    (work / "weights" / "resnet34_other.pth").write_bytes(b"other resnet34 weights")
    set_models(h2former={"model_kwargs": {"pretrained_file": "weights/resnet34_other.pth"}})  # another file
    assert _status(work) == _trained_stages("h2former") | {"report"}
    as_if_rerun()
    # a pretrained twin of a scratch entry (configs/paper-pretrained.yaml): only the new entry's stages run
    set_models(h2former_in1k={"model": "h2former", "model_kwargs": {"pretrained": True}})
    assert _status(work) == _model_stages("h2former_in1k") | {"report"}

    params_file.write_text(old)
    for name in ("resnet34.pth", "resnet34_other.pth"):
        (work / "weights" / name).unlink()
    _status(work)
    as_if_rerun()


def test_a_recipe_change_retrains_but_remeasures_nothing_and_an_architecture_change_does(work):
    """complexity@M reads the model's architecture (code, builder, model_kwargs), never its recipe: after an
    epochs change, no latency is measured again (perhaps on another machine than the other models')."""
    params_file = work / "params.yaml"
    old = params_file.read_text()
    params = yaml.safe_load(old)

    def set_dyglnet(entry: dict) -> set[str]:
        params["models"]["dyglnet"] = entry
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        return _status(work)

    # evaluate and transfer follow at `dvc repro` through the new best.pt; `dvc status` names the stages whose
    # own inputs changed
    assert set_dyglnet({"epochs": 3}) == _stages("train", "dyglnet") | {"report"}
    assert set_dyglnet({"epochs": 3, "lr": 0.01, "batch_size": 8}) == _stages("train", "dyglnet") | {"report"}
    _run([DVC, "commit", "--force", "--quiet"], work)  # as if those stages had rerun
    changed = set_dyglnet({"epochs": 3, "lr": 0.01, "batch_size": 8, "model_kwargs": {"widths": [64, 112, 160]}})
    assert changed == _stages("train", "dyglnet") | _stages("complexity", "dyglnet") | {"report"}
    params_file.write_text(old)
    _status(work)
    _run([DVC, "commit", "--force", "--quiet"], work)
    assert _status(work) == set()


@pytest.mark.parametrize("stage", sorted(STAGE_MODULES))
def test_every_module_a_stage_imports_is_fingerprinted(stage):
    """What importing a stage's entry module (and parsing --help) loads is covered by its fingerprint."""
    module = STAGE_MODULES[stage]
    script = (
        f"import sys, json, runpy; sys.argv = ['x', '--help']\n"
        f"try:\n    runpy.run_module({module!r}, run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print(json.dumps([m.__file__ for n, m in list(sys.modules.items()) if n.split('.')[0] in "
        f"{FIRST_PARTY!r} and getattr(m, '__file__', None)]))"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, capture_output=True, text=True)
    loaded = {str(Path(f).resolve().relative_to(REPO)) for f in json.loads(out.stdout.strip().splitlines()[-1])}
    assert loaded <= set(stage_sources(stage)), loaded - set(stage_sources(stage))


def test_dvc_yaml_reads_the_fingerprint_of_each_stage_it_runs():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        module = body["cmd"].split("python -m ")[1].split()[0]
        if name == "fingerprint":
            continue
        assert STAGE_MODULES[name] == module
        fingerprint_params = [p for p in body["params"] if isinstance(p, dict) and "code_fingerprints.yaml" in p]
        assert fingerprint_params and f"stages.{name}" in fingerprint_params[0]["code_fingerprints.yaml"]
        assert not [d for d in body.get("deps", []) if d in ("models", "baselines", "pipeline", "datasets")]


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def test_fingerprint_stage_depends_on_exactly_what_stages_and_models_can_import():
    """The fingerprint stage reruns for a change in any file a stage or a model can run, and for no other."""
    deps = [d for d in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["fingerprint"]["deps"]]
    needed = set(module_sources("pipeline.fingerprint"))
    for stage in STAGE_MODULES:
        needed |= set(stage_sources(stage))
    for name in list_models():
        needed |= set(model_sources(name))
    assert not [f for f in sorted(needed) if not _covered(f, deps)]
    file_deps = {d for d in deps if d.endswith(".py")}
    assert file_deps <= needed, file_deps - needed  # no file listed that nothing imports
    outside = ["pipeline/predict.py", "datasets/__main__.py"]
    outside += [str(p.relative_to(REPO)) for d in ("pipeline/grid", "pipeline/tools") for p in (REPO / d).rglob("*.py")]
    assert not [f for f in outside if _covered(f, deps)]


def test_dataset_adapters_import_no_other_adapter():
    """prepare@NAME reads the fingerprint of datasets/adapters/NAME.py alone: an adapter must not import another."""
    for path in sorted(adapter_files()):
        module = path.removesuffix(".py").replace("/", ".")
        others = (adapter_files() - {path}) & set(module_sources(module))
        assert not others, f"{path} imports {sorted(others)}"


def test_a_params_typo_fails_first_and_removes_no_output(work):
    """The fingerprint stage reads all of params.yaml: a typo stops `dvc repro` before a stage removes anything."""
    params_file = work / "params.yaml"
    old = params_file.read_text()
    params_file.write_text(old.replace("  lr: 0.001", "  lr: 0.001x"))
    best = work / "runs/synthetic/dyglnet/seed42/best.pt"
    result = subprocess.run([DVC, "repro"], cwd=work, capture_output=True, text=True)
    assert result.returncode != 0
    assert "train.lr: expected a number, got '0.001x'" in result.stdout + result.stderr
    assert best.read_text() == "dyglnet\n" and (work / "code_fingerprints.yaml").exists()
    params_file.write_text(old)
    assert _status(work) == set()


GLAS_FOLDER = "data/raw/GlaS (Warwick) \u00fc \u00e9/Warwick QU Dataset (Released 2016_07_08)"


def test_a_raw_folder_with_spaces_parentheses_and_accents_runs_through_the_grid(tmp_path):
    from fakedata import make_glas

    _copy_repo(tmp_path, {"glas": {"raw": GLAS_FOLDER}}, ["unet"])
    make_glas(tmp_path / GLAS_FOLDER.rsplit("/", 1)[0], counts=(8, 6, 6))
    _run([sys.executable, "-m", "pipeline.grid", "prepare@glas"], tmp_path)
    split = json.loads((tmp_path / "data/prepared/glas/split.json").read_text())
    assert sum(len(ids) for ids in split.values()) == 20
    assert json.loads(_run([DVC, "status", "--json", "prepare@glas"], tmp_path).stdout) == {}


def test_a_missing_dataset_folder_is_one_line_under_make_repro(tmp_path):
    _copy_repo(tmp_path, {"ph2": {"raw": "data/raw/PH2 Dataset images"}}, ["unet"])
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.grid"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: missing, and no stage makes it: prepare@ph2: data/raw/PH2 Dataset images")


def test_reformatting_the_whole_repository_reruns_nothing(work):
    """`ruff format` at another line length rewrites most files' bytes but no syntax tree: no stage is out of date."""
    files = [p for p in work.rglob("*.py") if ".dvc" not in p.parts]
    before = {p: p.read_bytes() for p in files}
    _run([str(Path(sys.executable).with_name("ruff")), "format", "--line-length", "100", "-q", "."], work)
    changed = [p for p in files if p.read_bytes() != before[p]]
    assert len(changed) > 50, len(changed)
    assert _status(work) == set()
    for p, data in before.items():
        p.write_bytes(data)
    assert _status(work) == set()
