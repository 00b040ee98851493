"""transfer.md / transfer.tex on generated runs (tests/fakeruns.py): values from the right files, the drop and its
interval, ranks, the paired tests, the verdicts and the summary sentence, no pairs, a missing run."""

from __future__ import annotations

import re
import shutil
import subprocess

import pandas as pd
import pytest
from fakeruns import make_tree
from test_report import inputs_of

from reports import claims, summary, transfer
from reports.inputs import ReportError
from reports.table import fmt

MODELS = ("dyglnet", "unet", "unetpp", "attention_unet")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Kvasir -> CVC (both trained) and Kvasir -> shifted (test_only), 24 test images each, no unconverged run."""
    root = tmp_path_factory.mktemp("tree")
    return make_tree(root, datasets=("kvasir", "cvc"), models=MODELS, n=24, rising=(), transfer=PAIRS)


PAIRS = (("kvasir", "cvc"), ("kvasir", "shifted"))


@pytest.fixture(scope="module")
def built(tree):
    inp = inputs_of(tree)
    md, tex = transfer.build(inp)
    return inp, md, tex


def _row(md: str, section: str, label: str) -> list[str]:
    part = md.split(f"## {section}\n")[1].split("\n## ")[0]
    line = next(line for line in part.splitlines() if line.startswith("|") and f"| {label} |" in line)
    return [c.strip() for c in line.strip("|").split("|")]


def test_cells_come_from_the_in_domain_and_the_transfer_runs(tree, built):
    inp, md, _ = built
    for model, label in (("dyglnet", "DyGLNet"), ("unet", "Unet")):
        cells = _row(md, "Kvasir-SEG → CVC-ClinicDB", label)
        own = pd.read_csv(tree / f"results/kvasir/{model}/seed42/per_image.csv")["dice"]  # percent
        moved = pd.read_csv(tree / f"results/transfer/kvasir-cvc/{model}/seed42/per_image.csv")["dice"]
        assert cells[2].strip("*†").startswith(fmt(own.mean()))  # in-domain: comparison.md's value
        assert re.sub(r"[*†]", "", cells[2]) == _comparison_cell(inp, model)
        assert cells[3].replace("*", "").replace("†", "").startswith(fmt(moved.mean()))
        drop = re.match(r"\**(-?\d+\.\d\d)\**†? \((-?\d+\.\d\d)–(-?\d+\.\d\d)\)", cells[4])
        assert drop and float(drop[1]) == pytest.approx(own.mean() - moved.mean(), abs=0.006)
        assert float(drop[2]) < float(drop[1]) < float(drop[3])
    ranks = {label: _row(md, "Kvasir-SEG → CVC-ClinicDB", label)[5] for label in ("DyGLNet", "Unet", "Unet++")}
    assert ranks == {"DyGLNet": "1", "Unet": "2", "Unet++": "3"}
    assert _row(md, "Kvasir-SEG → CVC-ClinicDB", "AttentionUnet (D)")[5] == "–"  # degenerate in-domain: not ranked


def _comparison_cell(inp, model: str) -> str:
    """The Dice cell of comparison.md for Kvasir-SEG, without its marks."""
    cell = summary.metric_cell(inp, "kvasir", model, "dice")
    return f"{fmt(cell.value)} ({fmt(cell.low)}–{fmt(cell.high)})"


def test_paired_tests_and_verdicts(built):
    inp, md, _ = built
    part = md.split("## Kvasir-SEG → CVC-ClinicDB\n")[1].split("\n## ")[0]
    tests = part.split("### Paired tests on CVC-ClinicDB: DyGLNet against each model")[1]
    assert "| Unet | 24 | 24 |" in tests and "Holm p" in tests and "DyGLNet better" in tests
    # the rule of claims.md on the Dice on the target: DyGLNet's interval above every other ranked model's
    assert "Verdicts: Dice on CVC-ClinicDB (%): supported (rank 1 of 3;" in part
    assert "Drop (points): inconclusive" in part  # Unet's drop interval overlaps DyGLNet's
    assert "generalises better is **supported** on 2 of 2 pairs (Kvasir-SEG → CVC-ClinicDB, Kvasir-SEG → " in md
    # Unet++ predicts almost nothing on the targets: ranked (that is failing to transfer) and named
    assert "on the target (ranked): Unet++." in part and _row(md, "Kvasir-SEG → CVC-ClinicDB", "Unet++")[5] == "3"
    assert claims.rule_text("DyGLNet", "the target's test images; for the drop, the smaller of the two test sets") in md


def test_unconverged_runs_and_few_images_make_the_verdict_inconclusive(tmp_path):
    root = make_tree(tmp_path, datasets=("kvasir",), models=MODELS, n=12, rising=("dyglnet",), transfer=PAIRS[1:])
    md, _ = transfer.build(inputs_of(root))
    assert "Verdicts: Dice on Synthetic-shifted (%): inconclusive (" in md
    assert "n < 20: 12 images" in md and "unconverged: DyGLNet" in md
    assert "generalises better is **inconclusive** on Kvasir-SEG → Synthetic-shifted." in md
    assert "| Ours | DyGLNet (U) |" in md


def test_no_pairs_no_table(tmp_path):
    md, tex = transfer.build(inputs_of(make_tree(tmp_path, models=("dyglnet", "unet"), n=6)))
    assert "No transfer pairs in this run" in md and "## Provenance" in md
    assert "begin{table" not in tex and tex.startswith("% Generalisation across datasets")


def test_a_missing_transfer_run_is_named(tmp_path):
    root = make_tree(tmp_path, datasets=("kvasir",), models=("dyglnet", "unet"), n=6, transfer=PAIRS[1:])
    (root / "results/transfer/kvasir-shifted/unet/seed42/per_image.csv").unlink()
    missing = r"kvasir-shifted/unet/seed42/per_image.csv: missing; run `dvc repro` \(stage transfer\)"
    with pytest.raises(ReportError, match=missing):
        inputs_of(root)


def test_several_seeds_give_a_standard_deviation_and_the_two_level_interval(tmp_path):
    root = make_tree(tmp_path, datasets=("kvasir",), models=("dyglnet", "unet"), seeds=(1, 2), n=6, transfer=PAIRS[1:])
    md, _ = transfer.build(inputs_of(root))
    seeds = r"-?\d+\.\d\d\**†?\** ± \d+\.\d\d \(-?\d+\.\d\d–-?\d+\.\d\d\)"
    assert re.search(rf"\| Ours \| DyGLNet \| \**{seeds} \| \**{seeds} \| \**{seeds} \|", md)
    assert "two-level bootstrap interval" in md


@pytest.mark.slow  # pdflatex: about 5 s
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_transfer_tex_compiles(built, tmp_path):
    _, _, tex = built
    doc = (
        "\\documentclass{article}\\usepackage{booktabs,xcolor,adjustbox}\\begin{document}\n"
        + tex
        + "\n\\end{document}\n"
    )
    (tmp_path / "t.tex").write_text(doc)
    cmd = ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "Overfull" not in r.stdout
