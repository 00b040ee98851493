"""Evaluation outputs and prediction on new images of any size, from a briefly trained checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.evaluate import evaluate
from pipeline.train import TrainConfig, train


@pytest.fixture(scope="module")
def checkpoint(tiny_prepared, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(
        data=str(tiny_prepared),
        model="dyglnet",
        out=str(out),
        epochs=1,
        batch_size=8,
        img_size=32,
        num_workers=0,
        model_kwargs={"depths": [1, 1, 1]},
    )
    train(cfg)
    return out / "best.pt"


def test_evaluate_writes_per_image_metrics_and_predictions(tiny_prepared, checkpoint, tmp_path):
    summary = evaluate(str(tiny_prepared), str(checkpoint), str(tmp_path), n_boot=200)
    test_ids = json.loads((tiny_prepared / "split.json").read_text())["test"]
    table = pd.read_csv(tmp_path / "per_image.csv", dtype={"id": str})
    assert list(table.columns) == ["id", "dice", "iou", "precision", "recall", "specificity", "accuracy", "hd95"]
    assert table["id"].tolist() == test_ids
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(summary))
    assert metrics["dice"]["mean"] == pytest.approx(100 * table["dice"].mean())  # percent
    assert metrics["hd95"]["mean"] == pytest.approx(table["hd95"].mean())  # pixels
    assert metrics["dice"]["ci95_low"] <= metrics["dice"]["mean"] <= metrics["dice"]["ci95_high"]
    preds = sorted(p.stem for p in (tmp_path / "pred").glob("*.png"))
    assert preds == sorted(test_ids)
    assert set(np.unique(cv2.imread(str(tmp_path / "pred" / f"{test_ids[0]}.png"), 0))) <= {0, 255}


def test_evaluate_cli_rejects_unknown_split(tiny_prepared, checkpoint, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.evaluate",
            "--data",
            str(tiny_prepared),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(tmp_path),
            "--split",
            "holdout",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "holdout" in result.stderr


def test_predict_writes_masks_at_original_size(checkpoint, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(inputs / "wide.png"), rng.integers(0, 255, (50, 70, 3), dtype=np.uint8))
    cv2.imwrite(str(inputs / "tall.jpg"), rng.integers(0, 255, (90, 40, 3), dtype=np.uint8))
    (inputs / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.predict",
            "--checkpoint",
            str(checkpoint),
            "--input",
            str(inputs),
            "--output",
            str(out),
            "--overlay",
        ],
        check=True,
        capture_output=True,
    )
    wide, tall = cv2.imread(str(out / "wide.png"), 0), cv2.imread(str(out / "tall.png"), 0)
    assert wide.shape == (50, 70) and tall.shape == (90, 40)
    assert set(np.unique(wide)) <= {0, 255}
    assert cv2.imread(str(out / "wide_overlay.png")).shape == (50, 70, 3)


def test_predict_with_foreign_checkpoint_fails_clearly(tmp_path):
    bogus = tmp_path / "model.pt"
    bogus.write_bytes(b"not a checkpoint")
    (tmp_path / "in").mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.predict",
            "--checkpoint",
            str(bogus),
            "--input",
            str(tmp_path / "in"),
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "model.pt" in result.stderr
