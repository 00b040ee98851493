"""The complexity stage records what it measured and on which machine (pipeline/complexity.py)."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from engine.params import load_params
from engine.runtime import device_name
from models.registry import _BUILDERS, _EXTRA, register_model
from pipeline.complexity import main, measure


@pytest.fixture
def tiny():
    """A registered two-layer model (accepts 16 px and more): the real stage code runs on it in a second."""

    @register_model(family="CNN", display_name="TinyCx", min_input_size=16)
    def _tiny_cx(width: int = 256):
        return torch.nn.Sequential(torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.Conv2d(width, 1, 1))

    try:
        yield "_tiny_cx"
    finally:
        del _BUILDERS["_tiny_cx"], _EXTRA["_tiny_cx"]


def test_the_result_records_the_machine_that_measured_it(tiny):
    spec = load_params().model_spec(tiny)
    row = measure(spec, 64, 1, 0, train_size=32)
    machine = row["machine"]
    assert set(machine) == {"cpu", "gpu", "torch", "threads", "dtype"}
    assert machine["cpu"] == device_name(torch.device("cpu"))
    assert machine["torch"] == torch.__version__ and machine["threads"] == torch.get_num_threads()
    assert machine["dtype"] == "float32"
    assert machine["gpu"] == (torch.cuda.get_device_name() if torch.cuda.is_available() else None)
    assert row["cpu_latency_ms"] > 0 and row["latency_repeats"] == 1
    # FLOPs at the measured size and at the size the models train at: a conv net's scale with the pixels
    assert (row["input_size"], row["train_size"]) == (64, 32)
    assert row["gflops_fvcore_train_size"] == pytest.approx(row["gflops_fvcore"] / 4, rel=0.01)


def test_gflops_at_a_training_size_the_model_refuses_are_null(tiny):
    row = measure(load_params().model_spec(tiny), 32, 1, 0, train_size=8)  # below its min_input_size
    assert row["train_size"] == 8 and row["gflops_fvcore_train_size"] is None and row["gflops_fvcore"] > 0


def test_the_stage_counts_gflops_at_prepare_size_and_records_no_recipe(tiny, tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"prepare": {"size": 16}, "models": {tiny: {"epochs": 3}}}))
    monkeypatch.chdir(tmp_path)
    assert main(["--model", tiny, "--out", "c.json", "--size", "32", "--repeats", "1", "--warmup", "0"]) == 0
    row = json.loads((tmp_path / "c.json").read_text())
    assert row["train_size"] == 16 and row["machine"]["threads"] == torch.get_num_threads()
    assert not {"display_name", "family", "epochs"} & set(row)  # complexity@M does not read models.M
