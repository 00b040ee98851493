"""Every documented command, given a bad argument, ends with exit status 2 and a sentence, never a traceback.

Each case runs the real ``python -m MODULE ARGS`` in a subprocess, from a scratch working directory that
holds either a copy of the repository's params.yaml or a broken one. The output must be one line
``error: ...`` on stderr (the convention of ``core.cli.run``) or argparse's usage and
``PROG: error: ...``, and must name the problem. Cases marked ``early`` (the argument checks of
datasets, prepare, evaluate, predict, complexity and bench_loader) must fail before torch is imported
(checked with a ``sitecustomize`` that records the imported modules at exit) and within 5 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import write_prepared

REPO = Path(__file__).resolve().parents[1]
BAD_PARAMS = "train:\n  lr: 1e-3\n"  # YAML reads 1e-3 as a string
BAD_PARAMS_MESSAGE = "train.lr: expected a number, got '1e-3'"
SITECUSTOMIZE = """\
import atexit, os, sys

def _report():
    with open(os.environ["CLI_TEST_IMPORTS"], "w") as fh:
        fh.write("torch" if "torch" in sys.modules else "no torch")

atexit.register(_report)
"""

# (id, module, arguments, params file ("good"/"bad"), text the error must contain, early)
CASES = [
    ("datasets-unknown-name", "datasets", ["nope"], "good", "unknown dataset 'nope'", True),
    ("datasets-fetch-unknown-name", "datasets", ["fetch", "nope"], "good", "unknown dataset 'nope'", True),
    (
        "datasets-fetch-missing-archive",
        "datasets",
        ["fetch", "ph2", "--from", "{tmp}/x.rar"],
        "good",
        "no such file",
        True,
    ),
    (
        "datasets-check-missing-raw",
        "datasets",
        ["check", "kvasir", "--raw", "{tmp}/none"],
        "good",
        "no such directory",
        True,
    ),
    ("synthetic-bad-int", "datasets.synthetic", ["--out", "{tmp}/s", "--n", "abc"], "good", "invalid int value", False),
    pytest.param(
        *("synthetic-zero-pairs", "datasets.synthetic", ["--out", "{tmp}/s", "--n", "0"], "good", "--n", False),
    ),
    (
        "synthetic-unknown-domain",
        "datasets.synthetic",
        ["--out", "{tmp}/s", "--domain", "nope"],
        "good",
        "invalid choice: 'nope'",
        False,
    ),
    (
        "prepare-unknown-dataset",
        "pipeline.prepare",
        ["--dataset", "nope", "--raw", "{tmp}/raw", "--out", "{tmp}/o"],
        "good",
        "invalid choice: 'nope'",
        True,
    ),
    (
        "prepare-missing-raw",
        "pipeline.prepare",
        ["--dataset", "kvasir", "--raw", "{tmp}/missing", "--out", "{tmp}/o"],
        "good",
        "no such directory",
        True,
    ),
    (
        "prepare-zero-size",
        "pipeline.prepare",
        ["--dataset", "kvasir", "--raw", "{tmp}/raw", "--out", "{tmp}/o", "--size", "0"],
        "good",
        "--size",
        True,
    ),
    (
        "prepare-out-not-ours",
        "pipeline.prepare",
        ["--dataset", "kvasir", "--raw", "{tmp}/raw", "--out", "{tmp}/runs"],
        "good",
        "not an earlier output of pipeline.prepare",
        True,
    ),
    (
        "prepare-bad-params",
        "pipeline.prepare",
        ["--dataset", "kvasir", "--raw", "{tmp}/raw", "--out", "{tmp}/o"],
        "bad",
        BAD_PARAMS_MESSAGE,
        True,
    ),
    (
        "train-unknown-model",
        "pipeline.train",
        ["--data", "{prep}", "--model", "nope", "--out", "{tmp}/r"],
        "good",
        "unknown model 'nope'",
        False,
    ),
    (
        "train-img-size-not-multiple-of-16",
        "pipeline.train",
        ["--data", "{prep}", "--model", "dyglnet", "--out", "{tmp}/r", "--img-size", "33", "--epochs", "1"],
        "good",
        "33",
        False,
    ),
    (
        "train-missing-data",
        "pipeline.train",
        ["--data", "{tmp}/missing", "--model", "dyglnet", "--out", "{tmp}/r"],
        "good",
        "missing",
        False,
    ),
    (
        "train-missing-pretrained-file",
        "pipeline.train",
        ["--data", "{prep}", "--model", "m2snet", "--out", "{tmp}/r", "--epochs", "1"],
        "weights",
        "m2snet: weight file 'missing.pth' for backbone 'res2net' (res2net50d) not found",
        False,
    ),
    (
        "train-weights-for-a-model-trained-from-scratch",
        "pipeline.train",
        ["--data", "{prep}", "--model", "dyglnet", "--out", "{tmp}/r", "--epochs", "1"],
        "weights",
        "dyglnet has no pretrained backbone (it trains from scratch); pretrained_file must be None",
        False,
    ),
    (
        "train-bad-params",
        "pipeline.train",
        ["--data", "{prep}", "--model", "dyglnet", "--out", "{tmp}/r"],
        "bad",
        BAD_PARAMS_MESSAGE,
        False,
    ),
    (
        "evaluate-missing-checkpoint",
        "pipeline.evaluate",
        ["--data", "{prep}", "--checkpoint", "{tmp}/none.pt", "--out", "{tmp}/e"],
        "good",
        "none.pt: no such file",
        True,
    ),
    (
        "evaluate-missing-data",
        "pipeline.evaluate",
        ["--data", "{tmp}/missing", "--checkpoint", "{tmp}/garbage.pt", "--out", "{tmp}/e"],
        "good",
        "missing: no such folder",
        True,
    ),
    (
        "evaluate-zero-batch",
        "pipeline.evaluate",
        ["--data", "{prep}", "--checkpoint", "{tmp}/garbage.pt", "--out", "{tmp}/e", "--batch-size", "0"],
        "good",
        "--batch-size",
        True,
    ),
    (
        "evaluate-not-a-checkpoint",
        "pipeline.evaluate",
        ["--data", "{prep}", "--checkpoint", "{tmp}/garbage.pt", "--out", "{tmp}/e"],
        "good",
        "garbage.pt: not a readable checkpoint",
        False,
    ),
    (
        "evaluate-bad-params",
        "pipeline.evaluate",
        ["--data", "{prep}", "--checkpoint", "{tmp}/garbage.pt", "--out", "{tmp}/e"],
        "bad",
        BAD_PARAMS_MESSAGE,
        True,
    ),
    (
        "transfer-size-mismatch",
        "pipeline.transfer",
        ["--source", "{prep}", "--target", "{tmp}/prep64", "--checkpoint", "{tmp}/garbage.pt", "--out", "{tmp}/t"],
        "good",
        "prep64 is prepared at 64 px but --source",
        True,
    ),
    (
        "transfer-same-dataset",
        "pipeline.transfer",
        ["--source", "{prep}", "--target", "{prep}", "--checkpoint", "{tmp}/garbage.pt", "--out", "{tmp}/t"],
        "good",
        "for a model's own dataset use pipeline.evaluate",
        True,
    ),
    (
        "transfer-missing-target",
        "pipeline.transfer",
        ["--source", "{prep}", "--target", "{tmp}/missing", "--checkpoint", "{tmp}/garbage.pt", "--out", "{tmp}/t"],
        "good",
        "missing: no such folder",
        True,
    ),
    (
        "transfer-missing-checkpoint",
        "pipeline.transfer",
        ["--source", "{prep}", "--target", "{tmp}/prep_b", "--checkpoint", "{tmp}/none.pt", "--out", "{tmp}/t"],
        "good",
        "none.pt: no such file",
        True,
    ),
    (
        "transfer-bad-params",
        "pipeline.transfer",
        ["--source", "{prep}", "--target", "{tmp}/prep_b", "--checkpoint", "{tmp}/garbage.pt", "--out", "{tmp}/t"],
        "bad",
        BAD_PARAMS_MESSAGE,
        True,
    ),
    (
        "predict-missing-checkpoint",
        "pipeline.predict",
        ["--checkpoint", "{tmp}/none.pt", "--input", "{tmp}/in", "--output", "{tmp}/p"],
        "good",
        "none.pt: no such file",
        True,
    ),
    (
        "predict-output-is-input",
        "pipeline.predict",
        ["--checkpoint", "{tmp}/garbage.pt", "--input", "{tmp}/in", "--output", "{tmp}/in"],
        "good",
        "overlap",
        True,
    ),
    (
        "predict-missing-input",
        "pipeline.predict",
        ["--checkpoint", "{tmp}/garbage.pt", "--input", "{tmp}/missing", "--output", "{tmp}/p"],
        "good",
        "missing: no such folder",
        True,
    ),
    (
        "predict-not-a-checkpoint",
        "pipeline.predict",
        ["--checkpoint", "{tmp}/garbage.pt", "--input", "{tmp}/in", "--output", "{tmp}/p"],
        "good",
        "garbage.pt: not a readable checkpoint",
        False,
    ),
    (
        "complexity-unknown-model",
        "pipeline.complexity",
        ["--model", "nope", "--out", "{tmp}/c.json"],
        "good",
        "unknown model 'nope'",
        True,
    ),
    (
        "complexity-size-too-small",
        "pipeline.complexity",
        ["--model", "dyglnet", "--out", "{tmp}/c.json", "--size", "8"],
        "good",
        "at least 16 px",
        True,
    ),
    (
        "complexity-size-not-multiple-of-16",
        "pipeline.complexity",
        ["--model", "dyglnet", "--out", "{tmp}/c.json", "--size", "40", "--repeats", "1", "--warmup", "0"],
        "good",
        "divisible by 16",
        False,
    ),
    (
        "complexity-bad-params",
        "pipeline.complexity",
        ["--model", "dyglnet", "--out", "{tmp}/c.json"],
        "bad",
        BAD_PARAMS_MESSAGE,
        True,
    ),
    ("report-bad-params", "pipeline.report", ["--out", "{tmp}/rep"], "bad", BAD_PARAMS_MESSAGE, False),
    (
        "report-missing-results",
        "pipeline.report",
        ["--results", "{tmp}/missing", "--out", "{tmp}/rep"],
        "good",
        "metrics.json: missing",
        False,
    ),
    (
        "bench-unknown-model",
        "pipeline.tools.bench",
        ["--models", "nope", "--json", "{tmp}/b.json"],
        "good",
        "unknown model 'nope'",
        False,
    ),
    pytest.param(
        "bench-size-not-multiple-of-16",
        "pipeline.tools.bench",
        ["--models", "dyglnet", "--size", "33", "--steps", "1", "--warmup", "0", "--json", "{tmp}/b.json"],
        "good",
        "33",
        False,
    ),
    (
        "bench_loader-missing-data",
        "pipeline.tools.bench_loader",
        ["--data", "{tmp}/missing"],
        "good",
        "no such folder",
        True,
    ),
    (
        "bench_loader-zero-batch",
        "pipeline.tools.bench_loader",
        ["--data", "{prep}", "--batch", "0"],
        "good",
        "--batch",
        True,
    ),
    ("models-bad-int", "models", ["--size", "abc"], "good", "invalid int value", False),
    ("models-unknown-name", "models", ["--deps", "nope"], "good", "unknown model 'nope'", False),
]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> dict[str, Path]:
    """Working directories with good, bad and weights (model_kwargs naming a missing weight file) params.yaml,
    and the files the cases point at."""
    root = tmp_path_factory.mktemp("cli")
    good, bad, weights = root / "good", root / "bad", root / "weights"
    for folder in (good, bad, weights):
        folder.mkdir()
    shutil.copy(REPO / "params.yaml", good / "params.yaml")
    (bad / "params.yaml").write_text(BAD_PARAMS)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    missing = {"model_kwargs": {"pretrained_file": "missing.pth"}}
    params["models"] = {"m2snet": missing, "dyglnet": missing}
    (weights / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "raw").mkdir()
    (root / "runs" / "kvasir").mkdir(parents=True)
    (root / "runs" / "kvasir" / "best.pt").write_bytes(b"precious weights")
    (root / "garbage.pt").write_bytes(b"not a checkpoint")
    (root / "in").mkdir()
    (root / "in" / "a.png").write_bytes(b"\x89PNG not really")
    site = root / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    write_prepared(root / "prep")
    write_prepared(root / "prep_b", seed=1)
    write_prepared(root / "prep64", size=64)
    return {"root": root, "good": good, "bad": bad, "weights": weights, "site": site}


def _id(case) -> str:
    return (case.values if hasattr(case, "values") else case)[0]


@pytest.mark.parametrize("case_id,module,args,params,expected,early", CASES, ids=[_id(c) for c in CASES])
def test_bad_argument_is_one_sentence(scratch, tmp_path, case_id, module, args, params, expected, early):
    root = scratch["root"]
    argv = [a.format(tmp=root, prep=root / "prep") for a in args]
    imports = tmp_path / "imports.txt"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(scratch["site"]), str(REPO), os.environ.get("PYTHONPATH", "")]),
        "CLI_TEST_IMPORTS": str(imports),
    }
    start = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", module, *argv], cwd=scratch[params], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    out = r.stdout + r.stderr
    assert r.returncode == 2, f"exit {r.returncode}:\n{out}"
    assert "Traceback" not in out, out
    lines = r.stderr.strip().splitlines()
    ours = len(lines) == 1 and lines[0].startswith("error: ")
    argparse_style = bool(lines) and lines[0].startswith("usage: ") and lines[-1].startswith(f"python -m {module}")
    assert ours or (argparse_style and ": error: " in lines[-1]), r.stderr
    assert expected in r.stderr, r.stderr
    if early:
        assert imports.read_text() == "no torch", f"{module} imported torch before reporting: {r.stderr}"
        assert elapsed < 5.0, f"{elapsed:.1f} s"
    assert (root / "runs" / "kvasir" / "best.pt").read_bytes() == b"precious weights"


@pytest.mark.parametrize(
    "module",
    [
        "pipeline.prepare",
        "pipeline.train",
        "pipeline.evaluate",
        "pipeline.transfer",
        "pipeline.complexity",
        "pipeline.report",
    ],
)
def test_help_works_whatever_params_yaml_holds(scratch, module):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=scratch["bad"], env=env, capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stdout.startswith(f"usage: python -m {module}"), r.stdout + r.stderr
