"""The LaTeX tables: paper-sized (13 models, 2 datasets x 6 metrics) tables compile standalone with the
packages their header names, fit the text width of a plain article (no overfull box), and use booktabs
rules only."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fakeruns import PAPER_MODELS, make_tree

from engine.params import load_params
from reports import ablation, comparison, complexity, initialisation
from reports.inputs import load_inputs
from reports.latex import escape
from reports.table import Cell, Column, Row, Table, mark_best

PDFLATEX = shutil.which("pdflatex")


@pytest.fixture(scope="module")
def paper_sized(tmp_path_factory) -> dict[str, str]:
    """comparison/ablation/complexity/initialisation .tex of a paper-profile-sized run (13 models + 2 variants,
    Table 2), with the six baselines of configs/paper-pretrained.yaml also pretrained."""
    pretrained = {
        f"{m}_in1k": {"model": m, "model_kwargs": {"pretrained": True}, "display_name": f"{m} (IN-1k)"}
        for m in ("m2snet", "swinunet", "hiformer_b", "h2former", "fatnet", "befunet")
    }
    root = make_tree(
        tmp_path_factory.mktemp("paper"),
        datasets=("kvasir", "cvc"),
        models=(*PAPER_MODELS, "dyglnet_wo_sa", "dyglnet_w_tconv"),
        extra_models=pretrained,
        n=6,
    )
    cwd = os.getcwd()
    os.chdir(root)
    try:
        inp = load_inputs(load_params(root / "params.yaml"), Path("results"), Path("runs"), Path("data/prepared"), root)
    finally:
        os.chdir(cwd)
    return {
        "comparison": comparison.build(inp)[1],
        "ablation": ablation.build(inp)[1],
        "complexity": complexity.build(inp)[1],
        "initialisation": initialisation.build(inp)[1],
    }


def compile_standalone(tex: str, folder: Path, name: str, options: str = "") -> str:
    """pdflatex a plain article that loads the packages named in the file's header; returns the log."""
    packages = re.search(r"^% Packages: (.*)$", tex, re.M)
    assert packages, "no '% Packages:' comment at the top"
    (folder / f"{name}-body.tex").write_text(tex)
    (folder / f"{name}.tex").write_text(
        f"\\documentclass[{options}]{{article}}\n{packages.group(1)}\n\\begin{{document}}\n\\input{{{name}-body}}\n\\end{{document}}\n"
    )
    run = subprocess.run(
        [PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = (folder / f"{name}.log").read_text(errors="replace")
    assert run.returncode == 0, log[-3000:]
    return log


@pytest.mark.skipif(
    PDFLATEX is None,
    reason="pdflatex not installed (Debian: texlive-latex-recommended "
    "texlive-latex-extra); the LaTeX tables are then checked for structure only",
)
@pytest.mark.parametrize("options", ["", "twocolumn"])
@pytest.mark.parametrize("name", ["comparison", "ablation", "complexity", "initialisation"])
def test_paper_sized_tables_compile_without_overfull_boxes(paper_sized, tmp_path, name, options):
    log = compile_standalone(paper_sized[name], tmp_path, name, options)
    overfull = [line for line in log.splitlines() if line.startswith("Overfull")]
    assert not overfull, overfull


def test_booktabs_rules_only(paper_sized):
    for name, tex in paper_sized.items():
        assert r"\cline" not in tex and r"\hline" not in tex, name
        floats = tex.count(r"\begin{table")
        assert tex.count(r"\bottomrule") == floats and tex.count(r"\toprule") == floats, name
    assert r"\cmidrule(lr){2-7}\cmidrule(lr){8-13}" in paper_sized["comparison"]


def test_captions_and_labels_are_clean(paper_sized):
    tex = "\n".join(paper_sized.values())
    labels = re.findall(r"\\label\{([^}]*)\}", tex)
    assert labels == [
        "tab:comparison-table2",
        "tab:comparison-hd95",
        "tab:ablation",
        "tab:ablation-cost",
        "tab:complexity",
        "tab:initialisation",
    ]
    assert "not-a-dataset" not in tex and "224 x 224" not in tex
    assert r"3$\times$224$\times$224" in paper_sized["complexity"]


def test_escape_and_marks():
    assert escape("a_b & 50% #1") == r"a\_b \& 50\% \#1"
    table = Table(
        [Row("a", "A"), Row("b", "B"), Row("c", "C")],
        [Column("dice", "Dice")],
        [[Cell(90.0, 89.0, 91.0, "ci")], [Cell(80.0, 79.0, 81.0, "ci")], [Cell(70.0)]],
    )
    mark_best(table)
    assert [r[0].rank for r in table.cells] == [1, 2, 0] and not table.has_dagger
    table.cells[1][0].high = 95.0  # second's interval now reaches the best's
    mark_best(table)
    assert table.cells[0][0].not_separable and table.has_dagger
