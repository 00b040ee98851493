"""The budget tool reads run folders and says where each curve levelled off."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipeline.tools.budget_curve import main, summary


def test_summary_finds_where_the_curve_came_within_the_margin():
    values = [50.0, 80.0, 90.0, 91.0, 91.2, 91.3, 91.4, 91.45]
    s = summary(values, per_epoch=30, margin=0.5)
    assert s["steps"] == 240 and s["best"] == 91.45 and s["within_margin_at_step"] == 4 * 30
    assert s["gain_last_quarter"] == pytest.approx(91.45 - 91.3) and s["last_quarter_steps"] == 60


def test_main_prints_each_run_and_refuses_a_run_without_validation(tmp_path, capsys):
    run = tmp_path / "unet"
    run.mkdir()
    pd.DataFrame({"epoch": [1, 2, 3, 4], "val_dice": [40.0, 70.0, 80.0, 80.2]}).to_csv(run / "log.csv", index=False)
    (run / "train.json").write_text(json.dumps({"steps": 40, "epochs": 4}))
    assert main([str(run)]) == 0
    assert "unet: 40 steps, best 80.20; within 0.5 of it at step 30" in capsys.readouterr().out
    pd.DataFrame({"epoch": [1, 2], "val_dice": [None, None]}).to_csv(run / "log.csv", index=False)
    with pytest.raises(Exception, match="no validation Dice"):
        main([str(run)])


def test_json_records_the_figures_with_the_runs_machine_for_the_benchmarks_page(tmp_path):
    from pipeline.tools.reference_docs import benchmarks_page

    run = tmp_path / "unet"
    run.mkdir()
    pd.DataFrame({"epoch": [1, 2, 3, 4], "val_dice": [40.0, 70.0, 80.0, 80.2]}).to_csv(run / "log.csv", index=False)
    record = {"steps": 40, "epochs": 4, "model": "unet", "device_name": "Some CPU", "precision": "fp32", "seconds": 9.5}
    (run / "train.json").write_text(json.dumps(record))
    out = tmp_path / "pages" / "budget.json"
    assert main([str(run), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["machine"]["cpu"] == "Some CPU" and result["machine"]["bf16"] is False
    assert "load_average" not in result["machine"]  # read from finished runs, not measured now
    assert result["command"] == f"python -m pipeline.tools.budget_curve {run} --json {out}"
    page = benchmarks_page(out.parent)
    assert "Machine: Some CPU, no bf16" in page and "| unet | unet | 40 | 80.20 | 30 | 0.2 | 9.50 |" in page
