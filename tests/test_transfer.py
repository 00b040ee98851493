"""Cross-dataset transfer: the stage (pipeline.transfer) on a tiny prepared pair, its params schema, its place in
the fingerprints and dvc.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fakedata import tiny_checkpoint

from core.errors import UserError
from engine.evaluation import evaluate
from engine.params import ParamsError, load_params, resolve_profile
from pipeline import transfer
from pipeline.fingerprint import STAGE_MODULES, stage_sources

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, Path]:
    """Two prepared datasets at 32 px (other images, other test ids) and a checkpoint trained on the first."""
    from conftest import write_prepared

    root = tmp_path_factory.mktemp("pair")
    source = write_prepared(root / "source", seed=0)
    target = write_prepared(root / "target", n_train=8, n_val=2, n_test=6, seed=1)
    return {"root": root, "source": source, "target": target, "checkpoint": tiny_checkpoint(source, root / "run")}


def test_transfer_scores_the_checkpoint_on_the_targets_test_split_as_evaluate_does(pair, tmp_path):
    out = tmp_path / "results" / "transfer" / "source-target" / "dyglnet" / "seed42"
    argv = ["--source", str(pair["source"]), "--target", str(pair["target"]), "--checkpoint", str(pair["checkpoint"])]
    assert transfer.main([*argv, "--out", str(out), "--bootstrap", "50"]) == 0
    got = pd.read_csv(out / "per_image.csv", dtype={"id": str})
    test_ids = json.loads((pair["target"] / "split.json").read_text())["test"]
    assert list(got["id"]) == test_ids and len(test_ids) == 6  # the target's test split, no retraining
    assert sorted(p.stem for p in (out / "pred").iterdir()) == test_ids and (out / "timing.json").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["source"] == "source" and metrics["target"] == "target" and metrics["n_images"] == 6
    direct = tmp_path / "direct"  # the function evaluate runs, on the same checkpoint and split
    evaluate(pair["target"], pair["checkpoint"], direct, n_boot=50, save_predictions=False)
    pd.testing.assert_frame_equal(got, pd.read_csv(direct / "per_image.csv", dtype={"id": str}))
    assert metrics["dice"] == json.loads((direct / "metrics.json").read_text())["dice"]


def test_transfer_refuses_datasets_prepared_at_other_sizes(pair, make_prepared):
    other = make_prepared(pair["root"] / "target64", size=64)
    with pytest.raises(UserError, match=r"target64 is prepared at 64 px but --source .* at 32 px"):
        transfer.check_pair(pair["source"], other, "test")
    with pytest.raises(UserError, match="use pipeline.evaluate"):
        transfer.check_pair(pair["source"], pair["source"], "test")
    assert transfer.check_pair(pair["source"], pair["target"], "test") == 32


def _params_with(tmp_path: Path, section: dict, datasets=("kvasir", "cvc")) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"] = {d: {"raw": f"data/raw/{d}"} for d in datasets}
    params["transfer"] = section
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.mark.parametrize(
    "section,message",
    [
        ({"pairs": [["kvasir", "ph2"]]}, "transfer.pairs.0 [kvasir, ph2]: target 'ph2' is in neither datasets:"),
        ({"pairs": [["ph2", "cvc"]]}, "transfer.pairs.0 [ph2, cvc]: source 'ph2' is not one of datasets: (kvasir,"),
        (
            {"pairs": [["shifted", "cvc"]], "test_only": {"shifted": {"raw": "x"}}},
            "source 'shifted' is not one of datasets: (kvasir, cvc) (it is test_only: never trained)",
        ),
        ({"pairs": [["kvasir", "kvasir"]]}, "source and target are the same"),
        ({"pairs": [["kvasir", "cvc"], ["kvasir", "cvc"]]}, "transfer.pairs.1 [kvasir, cvc]: listed twice"),
        ({"pairs": ["kvasir->cvc"]}, "transfer.pairs: entry 0: expected a [source, target] list"),
        ({"pairs": [["kvasir"]]}, "entry 0: expected a [source, target] list of two dataset names, got ['kvasir']"),
        ({"pairs": [], "test_only": {"ph2": {"raw": "x"}}}, "transfer.test_only: ph2 is the target of no pair"),
        ({"pairs": [["kvasir", "cvc"]], "test_only": {"cvc": {"raw": "x"}}}, "cvc also in datasets:"),
        ({"pairs": [["kvasir", "cvc"]], "extra": 1}, "transfer.extra: unknown key"),
    ],
)
def test_transfer_params_are_checked_against_the_datasets(tmp_path, section, message):
    with pytest.raises(ParamsError) as err:
        load_params(_params_with(tmp_path, section))
    assert message in str(err.value) and str(err.value).startswith(str(tmp_path / "params.yaml"))


def test_every_profile_names_its_pairs_and_the_paper_has_the_three_of_the_literature():
    pairs = {p.stem: load_params(p).transfer for p in (REPO / "configs").glob("*.yaml")}
    assert pairs["paper"].pairs == [["kvasir", "cvc"], ["cvc", "kvasir"], ["isic2016", "ph2"]]
    assert pairs["paper-pretrained"].pairs == pairs["paper"].pairs and not pairs["paper"].test_only
    assert pairs["quick"].pairs == [["synthetic", "shifted"]] and list(pairs["quick"].test_only) == ["shifted"]
    assert load_params(REPO / "params.yaml") == load_params(REPO / "configs" / "quick.yaml")
    for profile in (REPO / "configs").glob("*.yaml"):  # dvc.yaml's ${...} read these keys from the resolved file
        raw = resolve_profile(profile)
        assert {"pairs", "test_only"} <= set(raw["transfer"]) and isinstance(raw["synthetic"], dict)


def test_the_transfer_stage_runs_the_evaluation_code_and_its_own_entry():
    assert STAGE_MODULES["transfer"] == "pipeline.transfer"
    files = set(stage_sources("transfer"))
    assert {"pipeline/transfer.py", "engine/evaluation.py"} <= files and "pipeline/evaluate.py" not in files
    assert stage_sources("prepare_test_only") == stage_sources("prepare")
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["transfer"]
    assert stage["matrix"] == {"pair": "${transfer.pairs}", "model": "${models}", "seed": "${seeds}"}
    assert "runs/${item.pair[0]}/${item.model}/seed${item.seed}/best.pt" in stage["deps"]
