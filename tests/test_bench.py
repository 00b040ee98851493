"""pipeline.tools.bench: the table and JSON, the authors'-code comparison, bad folders as one-line errors."""

from __future__ import annotations

import json
import textwrap

import pytest

from core.cli import run
from core.errors import UserError
from pipeline.tools.bench import load_authors_model, main

# A stand-in for the authors' release with the same shape of file: timm's register_model on the builder.
FAKE_RELEASE = textwrap.dedent(
    """
    import torch.nn as nn
    from timm import models

    register_model = models.register_model


    class DyGLNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 1, 1))

        def forward(self, x):
            return self.body(x)


    @register_model
    def shvit_s1_modified(pretrained=False, **kwargs):
        return DyGLNet()
    """
)


def test_authors_comparison_rows_and_ratios(tmp_path, capsys):
    release = tmp_path / "DyGLNet-main"
    release.mkdir()
    (release / "model.py").write_text(FAKE_RELEASE)
    out = tmp_path / "bench.json"
    argv = ["--models", "dyglnet", "--size", "32", "--batch", "2", "--steps", "2", "--warmup", "1"]
    assert main([*argv, "--authors-code", str(release), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {r["code"]: r for r in report["rows"]}
    assert set(rows) == {"ours", "authors"} and rows["ours"]["params"] == 9_980_098
    assert rows["authors"]["params"] == 3 * 8 * 9 + 8 + 2 * 8 + 8 + 1
    for row in rows.values():
        assert len(row["train_step_ms"]) == len(row["infer_batch_ms"]) == 2
        assert row["train_images_per_s"] > 0 and row["infer_images_per_s"] > 0
    (ratio,) = report["ours_over_authors"]
    expected = rows["ours"]["train_images_per_s"] / rows["authors"]["train_images_per_s"]
    assert ratio["train_ratio"] == pytest.approx(expected, rel=1e-2, abs=1e-3)
    assert report["command"].startswith("python -m pipeline.tools.bench --models dyglnet")
    assert report["machine"]["cpu"] and "torch" in report["machine"] and report["machine"]["threads"] >= 1
    printed = capsys.readouterr().out
    assert "ours (eager) / authors (eager): training" in printed and "authors" in printed


def test_missing_or_foreign_release_is_a_user_error(tmp_path, capsys):
    with pytest.raises(UserError, match="no model.py"):
        load_authors_model(tmp_path)
    (tmp_path / "model.py").write_text("x = 1\n")
    with pytest.raises(UserError, match="defines no shvit_s1_modified"):
        load_authors_model(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(main, ["--authors-code", str(empty), "--json", str(tmp_path / "b.json")]) == 2
    assert capsys.readouterr().err.startswith(f"error: --authors-code {empty}: no model.py")
