"""Comparisons fair by construction (issue 30): budgets in optimiser steps, the (B) flag for a recipe that differs,
one small-sample rule, percent in per_image.csv, a profile's own stages and reports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fakeruns import make_tree

from engine.params import load_params
from engine.recipe import epochs_for_steps
from pipeline.report import write_reports
from reports import assemble, captions, claims, comparison, figures, significance, summary, transfer
from reports.inputs import ReportError, load_inputs

REPO = Path(__file__).resolve().parents[1]


def inputs_of(root: Path):
    return load_inputs(load_params(root / "params.yaml"), root / "results", root / "runs", root / "data/prepared", root)


@pytest.mark.parametrize(
    ("images", "batch", "steps", "epochs"),
    [(40, 16, 450, 225), (160, 16, 450, 45), (800, 16, 450, 9), (800, 16, 20, 1)],
)
def test_steps_to_epochs(images, batch, steps, epochs):
    per_epoch = images // batch  # drop_last: the loader's batches
    assert epochs_for_steps(steps, per_epoch) == epochs
    assert epochs * per_epoch >= steps > (epochs - 1) * per_epoch or epochs == 1


def test_a_run_with_a_step_budget_records_the_steps_it_made(tmp_path, make_prepared):
    from test_train import tiny_config

    from pipeline.train import train

    data = make_prepared(tmp_path / "data", n_train=40)  # 40 images at batch 8: 5 steps an epoch
    summary_ = train(tiny_config(data, tmp_path / "run", steps=12, epochs=1))
    assert summary_["steps_budget"] == 12 and summary_["epochs"] == 3 and summary_["steps"] == 15
    assert summary_["recipe"]["steps"] == 12 and summary_["recipe"]["lr"] == pytest.approx(1e-3)
    assert json.loads((tmp_path / "run" / "train.json").read_text())["steps"] == 15


@pytest.fixture(scope="module")
def unequal(tmp_path_factory) -> Path:
    """Four models with a budget of 20 steps, DyGLNet given 60 by its models: entry; a transfer pair."""
    root = tmp_path_factory.mktemp("unequal")
    return make_tree(
        root,
        datasets=("kvasir",),
        models=("unet", "unetpp", "attention_unet"),
        extra_models={"dyglnet": {"steps": 60}},
        train={"steps": 20, "epochs": None},
        n=24,
        transfer=(("kvasir", "shifted"),),
    )


def test_a_per_model_steps_override_is_flagged_b_everywhere(unequal):
    inp = inputs_of(unequal)
    assert inp.recipe_diffs == {"dyglnet": {"budget": "steps 60 vs 20"}}
    md, tex = comparison.build(inp)
    row = next(line for line in md.splitlines() if "DyGLNet" in line and line.startswith("|"))
    assert "DyGLNet (B)" in row and "**" not in row  # never bold
    assert "Recipe differs (B): DyGLNet: steps 60 vs 20." in md and "B: recipe differs" in tex
    sig = significance.build(inp)
    assert sig.count("recipe differs (DyGLNet: B)") == 3 and " better" not in sig.split("## Kvasir-SEG")[1]
    claims_md = claims.build(inp)
    verdicts = re.findall(r"Verdict \(.*?\): (.*)", claims_md)
    assert verdicts and not any("supported (" in v and "not supported" not in v for v in verdicts)
    assert all("trained with another recipe (B)" in v for v in verdicts)
    transfer_md, _ = transfer.build(inp)
    assert "DyGLNet (B)" in transfer_md and "recipe differs (DyGLNet: B)" in transfer_md
    assert "**supported**" not in transfer_md
    gflops = captions.bubble_gflops(inp, inp.main_models())
    rows = assemble.bubble_rows(inp, gflops.values)
    fig = figures.bubble_chart(
        rows, gflops_label=gflops.axis, caption=captions.bubble_caption(inp, gflops, list(rows["flags"]))
    )
    assert "DyGLNet (B)" in {t.get_text().split("\n")[0] for t in fig.axes[0].texts}
    assert "B: recipe differs" in figures.caption_of(fig)
    prov = inp.provenance["recipe"]
    assert prov.startswith("20 optimiser steps") and "per-model overrides: dyglnet: steps=60" in prov


def test_fail_on_unequal_is_one_line(unequal, tmp_path):
    root = tmp_path / "tree"
    shutil.copytree(unequal, root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["report"]["fail_on_unequal"] = True
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ReportError) as err:
        write_reports(
            load_params(root / "params.yaml"), root / "results", root / "runs", root / "data/prepared", root / "out"
        )
    assert (
        str(err.value)
        == "report.fail_on_unequal: runs trained with another recipe than train:: dyglnet: steps 60 vs 20"
    )
    assert not (root / "out").exists()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.report", "--out", "out"], cwd=root, env=env, capture_output=True, text=True
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "report.fail_on_unequal: runs trained with another recipe" in result.stderr


def test_ten_paired_images_are_inconclusive_never_better(tmp_path):
    inp = inputs_of(make_tree(tmp_path, datasets=("kvasir",), models=("dyglnet", "unet", "unetpp"), n=10))
    text = significance.build(inp)
    results = [line.rsplit("|", 2)[-2].strip() for line in text.splitlines() if line.startswith("| Unet")]
    assert results == ["inconclusive (n < 20)", "inconclusive (n < 20)"]
    assert "Small samples: any verdict or paired test on fewer than 20 images" in text


def test_initialisation_table_compares_on_init_and_flags_nothing_else(tmp_path):
    root = make_tree(
        tmp_path,
        models=("dyglnet", "unet", "swinunet"),
        extra_models={"swinunet_in1k": {"model": "swinunet", "model_kwargs": {"pretrained": True}}},
        weights={"swinunet_in1k": {"backbone": {"source": "hub", "id": "x"}}},
        n=6,
    )
    inp = inputs_of(root)
    assert inp.recipe_diffs == {"swinunet_in1k": {"init": "init pretrained vs scratch"}}
    assert summary.make_row(inp, "swinunet_in1k", inp.datasets).flags[-1] == "B"  # in the comparison
    assert "B" not in summary.make_row(inp, "swinunet_in1k", inp.datasets, ignore=("init",)).flags


def test_per_image_csv_holds_percent(tmp_path, make_prepared):
    from fakedata import tiny_checkpoint

    from engine.evaluation import evaluate

    data = make_prepared(tmp_path / "data")
    checkpoint = tiny_checkpoint(data, tmp_path / "ckpt")
    metrics = evaluate(data, checkpoint, tmp_path / "eval", n_boot=10, save_predictions=False)
    table = pd.read_csv(tmp_path / "eval" / "per_image.csv")
    for name, unit in metrics["units"].items():
        assert metrics[name]["mean"] == pytest.approx(table[name].mean(), abs=1e-4), name
        if unit == "%" or unit == "% of image":
            assert table[name].between(0, 100).all(), name
    assert table["dice"].max() > 1.0 or table["dice"].max() == 0.0  # percent, not a fraction
    assert metrics["per_image_units"] == "as units"


def test_per_image_files_in_fractions_are_read_as_percent(tmp_path):
    root = make_tree(tmp_path, models=("dyglnet", "unet"), n=6)
    before = inputs_of(root).runs[("kvasir", "unet", 42)].per_image["dice"]
    folder = root / "results/kvasir/unet/seed42"
    metrics = json.loads((folder / "metrics.json").read_text())
    del metrics["per_image_units"]  # as written before the switch to percent
    (folder / "metrics.json").write_text(json.dumps(metrics))
    table = pd.read_csv(folder / "per_image.csv")
    for name in ("dice", "iou", "precision", "recall", "specificity", "accuracy", "surface_dice"):
        table[name] = table[name] / 100
    table.to_csv(folder / "per_image.csv", index=False)
    assert inputs_of(root).runs[("kvasir", "unet", 42)].per_image["dice"].tolist() == pytest.approx(before.tolist())


def _stages(params: dict, tmp_path: Path) -> set[str]:
    work = tmp_path / "stages"
    work.mkdir(parents=True)
    shutil.copy(REPO / "dvc.yaml", work / "dvc.yaml")
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    dvc = str(Path(sys.executable).with_name("dvc"))
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=work, check=True)
    out = subprocess.run([dvc, "stage", "list", "--name-only"], cwd=work, check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def test_a_real_data_profile_runs_only_its_own_stages(tmp_path):
    from pipeline.tools.profile import resolved_text

    params = yaml.safe_load(resolved_text("real-cpu", "tnbc", "data/raw/TNBC"))
    stages = _stages(params, tmp_path)
    assert not [s for s in stages if s.startswith("synthesize")]
    assert "prepare@tnbc" in stages and "train@tnbc-dyglnet-42" in stages and "report" in stages
    quick = _stages(yaml.safe_load((REPO / "configs/quick.yaml").read_text()), tmp_path / "q")
    assert {"synthesize@synthetic", "synthesize@shifted"} <= quick


def test_each_profile_reports_into_its_own_folder():
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["report"]
    assert "--out output/${profile}" in stage["cmd"] and "--metrics metrics/${profile}.json" in stage["cmd"]
    assert stage["outs"] == [{"output/${profile}": {"cache": False}}]
    assert stage["metrics"] == [{"metrics/${profile}.json": {"cache": False}}]


def test_running_another_profile_leaves_the_committed_reports_byte_identical(tmp_path):
    """`dvc repro report` of a profile writes output/<profile>/ and metrics/<profile>.json; the default profile's
    committed output/quick/ and metrics/quick.json stay as they are, and `dvc status` is clean afterwards."""
    root = make_tree(tmp_path / "tree", models=("dyglnet", "unet"), n=6)
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    (root / "reports").symlink_to(REPO / "reports")  # the stage's dependency reports/paper; `reports` stays importable
    committed = {
        p.relative_to(REPO): p.read_bytes() for p in [*(REPO / "output/quick").iterdir(), REPO / "metrics/quick.json"]
    }
    for rel, data in committed.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    params = load_params(root / "params.yaml").model_dump(mode="json")  # every section, as a profile has them
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    fingerprints = {"stages": {"report": "x"}, "models": {m: "x" for m in params["models"]}}
    (root / "code_fingerprints.yaml").write_text(yaml.safe_dump(fingerprints))
    dvc = str(Path(sys.executable).with_name("dvc"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=root, check=True)
    result = subprocess.run(
        [dvc, "repro", "--single-item", "report"], cwd=root, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "output/test/comparison.md").is_file() and (root / "metrics/test.json").is_file()
    assert {rel: (root / rel).read_bytes() for rel in committed} == committed
    status = subprocess.run([dvc, "status", "--json", "report"], cwd=root, env=env, capture_output=True, text=True)
    assert json.loads(status.stdout) == {}
