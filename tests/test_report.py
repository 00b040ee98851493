"""The report stage on fabricated evaluation outputs: tables, marking, paper comparison, LaTeX."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.metrics import summarize
from pipeline.report import ReportError, write_reports
from reports.tables import rank_columns

MODELS = {"dyglnet": 0.9, "unet": 0.8, "unetpp": 0.7, "dyglnet_wo_sa": 0.85}


def fabricate(root: Path, datasets=("kvasir",), seeds=(42,), n=12, size=32) -> tuple[Path, Path]:
    """Prepared data, per-run evaluation outputs and complexity files, as the pipeline writes them."""
    rng = np.random.default_rng(0)
    results, prepared = root / "results", root / "prepared"
    for d in datasets:
        ids = [f"im{i:02d}" for i in range(n)]
        folder = prepared / d
        folder.mkdir(parents=True)
        np.save(folder / "images.npy", rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8))
        masks = np.zeros((n, size, size), np.uint8)
        masks[:, 8:24, 8:24] = 1
        np.save(folder / "masks.npy", masks)
        (folder / "ids.json").write_text(json.dumps(ids))
        (folder / "split.json").write_text(json.dumps({"train": [], "val": [], "test": ids}))
        for m, level in MODELS.items():
            for s in seeds:
                run = results / d / m / f"seed{s}"
                (run / "pred").mkdir(parents=True)
                values = {
                    k: np.clip(level + rng.normal(0, 0.05, n), 0, 1)
                    for k in ("dice", "iou", "precision", "recall", "specificity", "accuracy")
                }
                values["hd95"] = rng.uniform(0, 5, n)
                pd.DataFrame({"id": ids, **values}).to_csv(run / "per_image.csv", index=False)
                (run / "metrics.json").write_text(
                    json.dumps({k: summarize(v, scale=1 if k == "hd95" else 100) for k, v in values.items()})
                )
                for i in ids:
                    cv2.imwrite(str(run / "pred" / f"{i}.png"), masks[0] * 255)
    (results / "complexity").mkdir(parents=True)
    for m in MODELS:
        (results / "complexity" / f"{m}.json").write_text(
            json.dumps(
                {
                    "model": m,
                    "params": 1_000_000 * (len(m) + 1),
                    "gflops_fvcore": float(len(m)),
                    "cpu_latency_ms": 5.0,
                    "gpu_latency_ms": None,
                }
            )
        )
    return results, prepared


def test_every_report_file_is_written(tmp_path):
    results, prepared = fabricate(tmp_path)
    out = tmp_path / "reports"
    written = write_reports(results, prepared, out, ["kvasir"], list(MODELS), [42], {})
    names = {p.name for p in written}
    assert names == {
        "comparison.md",
        "comparison.tex",
        "ablation.md",
        "ablation.tex",
        "complexity.md",
        "complexity.tex",
        "paper_vs_ours.md",
        "significance.md",
        "bubble.png",
        "bubble.pdf",
        "qualitative.png",
    }
    comparison = (out / "comparison.md").read_text()
    assert "Table 2" in comparison and "Kvasir-SEG Dice" in comparison
    assert "dyglnet_wo_sa" not in comparison and "ours w/o SA" not in comparison  # variants go to ablation
    assert "ours w/o SA" in (out / "ablation.md").read_text()
    tex = (out / "comparison.tex").read_text()
    assert "\\toprule" in tex and "\\textcolor{red}" in tex and "\\textcolor{blue}" in tex
    assert (out / "bubble.pdf").read_bytes().startswith(b"%PDF")


def test_best_bold_second_italic():
    means = pd.DataFrame({"a": [1.0, 3.0, 2.0], "b": [5.0, 4.0, 6.0]})
    ranks = rank_columns(means)
    assert ranks["a"].tolist() == [0, 1, 2] and ranks["b"].tolist() == [2, 0, 1]
    assert rank_columns(means, higher_is_better=False)["a"].tolist() == [1, 0, 2]


def test_paper_numbers_only_beside_ours_and_labelled(tmp_path):
    results, prepared = fabricate(tmp_path)
    out = tmp_path / "reports"
    write_reports(results, prepared, out, ["kvasir"], list(MODELS), [42], {})
    text = (out / "paper_vs_ours.md").read_text()
    paper = pd.read_csv(Path(__file__).parents[1] / "reports" / "paper" / "comparison.csv")
    paper_dice = paper.query("dataset == 'Kvasir-SEG' and model == 'DyGLNet' and metric == 'Dice'")["value_percent"]
    assert f"{paper_dice.item():.2f}" in text
    ours = json.loads((results / "kvasir" / "dyglnet" / "seed42" / "metrics.json").read_text())["dice"]["mean"]
    assert f"{ours:.2f}" in text
    assert "31.04" in (out / "complexity.md").read_text()  # UNet's Table 7 value, in the labelled paper table


def test_seeds_give_mean_and_std(tmp_path):
    results, prepared = fabricate(tmp_path, seeds=(1, 2))
    out = tmp_path / "reports"
    write_reports(results, prepared, out, ["kvasir"], list(MODELS), [1, 2], {})
    assert re.search(r"\d+\.\d\d ± \d+\.\d\d", (out / "comparison.md").read_text())
    assert "$\\pm$" in (out / "comparison.tex").read_text()


def test_significance_tests_reference_against_others(tmp_path):
    results, prepared = fabricate(tmp_path)
    out = tmp_path / "reports"
    write_reports(results, prepared, out, ["kvasir"], list(MODELS), [42], {})
    text = (out / "significance.md").read_text()
    for name in ("Unet", "Unet++", "ours w/o SA"):
        assert f"| {name} " in text
    assert "p-value" in text


def test_missing_run_names_the_file(tmp_path):
    results, prepared = fabricate(tmp_path)
    (results / "kvasir" / "unet" / "seed42" / "metrics.json").unlink()
    out = tmp_path / "reports"
    with pytest.raises(ReportError, match=r"unet/seed42/metrics.json"):
        write_reports(results, prepared, out, ["kvasir"], list(MODELS), [42], {})
    assert not out.exists()  # nothing half-written


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed (Debian: texlive-latex-extra)")
def test_generated_latex_compiles(tmp_path):
    results, prepared = fabricate(tmp_path / "data", seeds=(1, 2))
    out = tmp_path / "reports"
    write_reports(results, prepared, out, ["kvasir"], list(MODELS), [1, 2], {})
    for tex in sorted(out.glob("*.tex")):
        doc = tmp_path / f"doc_{tex.stem}.tex"
        doc.write_text(
            "\\documentclass{article}\n\\usepackage{booktabs,multirow,xcolor}\n"
            f"\\begin{{document}}\n\\input{{{tex}}}\n\\end{{document}}\n"
        )
        run = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, f"{tex.name}:\n{run.stdout[-2000:]}"
