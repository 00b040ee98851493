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
