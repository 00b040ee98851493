"""Every Table 7 baseline against its reference size, and discovery of a new one-file baseline."""

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from models import create_model, list_models, model_info
from models.complexity import count_params

REFERENCE = Path(__file__).parents[1] / "baselines" / "reference_sizes.csv"
ROWS = list(csv.DictReader(REFERENCE.open()))


@pytest.mark.parametrize("row", ROWS, ids=[r["name"] for r in ROWS])
def test_parameter_count_matches_reference(row):
    params = count_params(create_model(row["name"]))
    target = int(row["params_live"])
    assert abs(params - target) / target <= float(row["params_tolerance"]), (params, target)


@pytest.mark.parametrize("row", ROWS, ids=[r["name"] for r in ROWS])
def test_registered_with_paper_name_and_family(row):
    info = model_info(row["name"])
    assert info.display_name == row["paper_name"]
    assert info.family == row["family"]


def test_all_twelve_table7_baselines_registered():
    assert {r["name"] for r in ROWS} <= set(list_models())
    assert len(ROWS) == 12


def test_a_new_file_in_baselines_is_discovered(tmp_path):
    (tmp_path / "my_tiny_net.py").write_text(
        textwrap.dedent("""
        import torch.nn as nn
        from models.registry import register_model

        @register_model(family="CNN", display_name="MyTinyNet", min_input_size=8)
        def my_tiny_net(**kwargs):
            return nn.Conv2d(3, 1, 3, padding=1)
    """)
    )
    script = textwrap.dedent(f"""
        import baselines
        baselines.__path__.append({str(tmp_path)!r})  # as if the file were in baselines/
        from models import create_model, list_models
        from models.__main__ import main
        assert "my_tiny_net" in list_models(), list_models()
        assert create_model("my_tiny_net").out_channels == 1
        main(["--json", "--size", "32", "my_tiny_net"])
    """)
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    (row,) = json.loads(out)
    assert row["name"] == "my_tiny_net" and row["params"] == 3 * 9 + 1 and row["family"] == "CNN"
