"""The report stage end to end on generated pipeline outputs (tests/fakeruns.py): files, layout, marking,
uncertainty, flags, provenance, determinism, errors, and that it never imports torch."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from fakeruns import make_tree

from engine.params import load_params
from pipeline.report import write_reports
from reports import assemble, captions, comparison, complexity, figures, initialisation, summary
from reports.inputs import ReportError, load_inputs

REPO = Path(__file__).resolve().parents[1]
EXPECTED = {
    "comparison.md",
    "comparison.tex",
    "ablation.md",
    "ablation.tex",
    "complexity.md",
    "complexity.tex",
    "initialisation.md",
    "initialisation.tex",
    "paper_vs_ours.md",
    "significance.md",
    "claims.md",
    "transfer.md",
    "transfer.tex",
    "bubble.png",
    "bubble.pdf",
    "qualitative.png",
    "qualitative.pdf",
    "val_curves.png",
    "val_curves.pdf",
    "figures.md",
    "ranking.md",
    "ranking.tex",
    "ranking_blob.png",
    "ranking_blob.pdf",
    "ranking_significance.png",
    "ranking_significance.pdf",
    "ranking_methods.png",
    "ranking_methods.pdf",
    "ranking_heatmap.png",
    "ranking_heatmap.pdf",
    "reproduction.md",
}


def report(root: Path, out: str = "output") -> Path:
    """Run the report stage on a fake tree (from inside it, as DVC does); returns the output folder."""
    cwd = os.getcwd()
    os.chdir(root)
    try:
        write_reports(
            load_params(root / "params.yaml"),
            Path("results"),
            Path("runs"),
            Path("data/prepared"),
            Path(out),
            metrics=Path("metrics.json"),
        )
    finally:
        os.chdir(cwd)
    return root / out


def inputs_of(root: Path):
    """The loaded inputs of a fake tree, for tests that need one report only (faster than all of them)."""
    cwd = os.getcwd()
    os.chdir(root)
    try:
        return load_inputs(
            load_params(root / "params.yaml"), Path("results"), Path("runs"), Path("data/prepared"), root
        )
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """One full report of two paper datasets of different tables (2 and 4) and one outside the paper."""
    root = make_tree(tmp_path_factory.mktemp("tree"), datasets=("kvasir", "isic2016", "synthetic"))
    return report(root)


def test_every_output_is_written(built):
    assert {p.name for p in built.iterdir()} == EXPECTED
    metrics = json.loads((built.parent / "metrics.json").read_text())
    assert (
        set(metrics) == {"kvasir", "isic2016", "synthetic", "rank_stability"} and "dice" in metrics["kvasir"]["dyglnet"]
    )
    stability = metrics["rank_stability"]["kvasir"]
    assert stability["models"]["dyglnet"] == {"rank": 1, "rank_ci95_low": 1, "rank_ci95_high": 1}
    assert -1 <= stability["kendall_tau"] <= 1 and "dyglnet_wo_sa" not in stability["models"]  # main models only


def test_tables_use_the_papers_metric_sets(built):
    md = (built / "comparison.md").read_text()
    table2 = md.split("## Table 2")[1].split("##")[0]
    table4 = md.split("## Table 4")[1].split("##")[0]
    header4 = next(line for line in table4.splitlines() if line.startswith("| Family"))
    assert "Kvasir-SEG Specificity" in table2 and "Kvasir-SEG Recall" in table2
    assert header4.count("ISIC2016") == 4 and "Recall" not in header4 and "Specificity" not in header4
    assert "## Synthetic (not a dataset of the paper)" in md
    assert "## HD95 (not printed by the paper)" in md
    assert "ours w/o SA" not in md  # variants go to the ablation table
    assert "ours w/o SA" in (built / "ablation.md").read_text()


def test_uncertainty_in_every_metric_cell(built):
    md = (built / "comparison.md").read_text()
    rows = " ".join(line for line in md.splitlines() if line.startswith("| Ours | DyGLNet"))
    cells = re.findall(r"\d+\.\d\d\**†?\** \(\d+\.\d\d–\d+\.\d\d\)", rows)  # value (CI low–high)
    assert len(cells) == 6 + 4 + 6 + 3  # Table 2 layout, Table 4 layout, synthetic, HD95
    tex = (built / "comparison.tex").read_text()
    assert re.search(r"\d\.\d\d\$\^\{\+\d+\.\d\}_\{-\d+\.\d\}\$", tex)


def test_degenerate_runs_are_flagged_and_never_ranked(built):
    md = (built / "comparison.md").read_text()
    att = next(line for line in md.splitlines() if "AttentionUnet" in line and line.startswith("| CNN"))
    assert "AttentionUnet (D)" in att
    assert "100.00" in att and "**" not in att and "*" not in att.replace("(D)", "")  # wins nothing
    assert "AttentionUnet on Kvasir-SEG: degenerate" in md
    assert "AttentionUnet\\textsuperscript{D}" in (built / "comparison.tex").read_text()


def test_unconverged_runs_are_flagged(built):
    md = (built / "comparison.md").read_text()
    assert "| CNN | Unet (U) |" in md and "| Ours | DyGLNet |" in md


def test_best_marks_and_separability_footnote(built):
    md = (built / "comparison.md").read_text()
    assert "**" in md and "†" in md and "not separable" in md
    tex = (built / "comparison.tex").read_text()
    assert r"\textbf{\textcolor{red}{" in tex and r"\underline{\textcolor{blue}{" in tex


def test_complexity_has_the_papers_table7_columns_in_latex_and_latency_spread(built):
    tex = (built / "complexity.tex").read_text()
    assert "Paper Table 7" in tex and "GFLOPs (thop)" in tex and "31.04" in tex  # UNet's Table 7 params
    md = (built / "complexity.md").read_text()
    assert "(9.5–10.8)" in md and "median of 20 warm runs" in md  # the fixture's p10-p90 and repeats
    assert not re.search(r"\bnan\b", md.lower())


def test_ablation_cost_table(built):
    md, tex = (built / "ablation.md").read_text(), (built / "ablation.tex").read_text()
    assert "## Cost of each variant" in md and "use_attention=False" in md
    assert r"\label{tab:ablation-cost}" in tex and r"$\Delta$" in tex


def test_paper_vs_ours_row_order_and_no_nan_or_negative_zero(built):
    text = (built / "paper_vs_ours.md").read_text()
    assert not re.search(r"\bnan\b", text.lower()) and "-0.00" not in text
    segmentation = text.split("## Ablation")[0]
    rows = [line.split("|")[2].strip() for line in segmentation.splitlines() if line.startswith("| Kvasir-SEG")]
    order = list(dict.fromkeys(rows))
    assert order == ["Unet", "Unet++", "AttentionUnet", "DyGLNet"]  # the comparison tables' order
    assert "| ISIC2016 | DyGLNet | Accuracy |" in text and "| ISIC2016 | DyGLNet | Recall |" not in text


def test_significance_reports_holm_ties_direction_and_effect_size(built):
    text = (built / "significance.md").read_text()
    assert "Holm p" in text and "untied" in text and "median diff (95% CI)" in text
    assert "DyGLNet better" in text
    kvasir = text.split("## Kvasir-SEG")[1].split("##")[0]
    assert "| AttentionUnet | 12 | 12 |" in kvasir


def test_claims_bins_and_boundary_tables(built):
    text = (built / "claims.md").read_text()
    assert text.count("### Dice by lesion size") == 3 and text.count("### Boundary accuracy") == 3
    assert "Small (n=4)" in text and "NSD@2px (%)" in text and "HD95 (px)" in text
    assert "Verdict (small-object claim)" in text and "Verdict (boundary claim)" in text
    boundary = text.split("### Boundary accuracy")[1]
    dyglnet = next(line for line in boundary.splitlines() if line.startswith("| Ours | DyGLNet"))
    assert float(dyglnet.split("|")[-2].split()[0].strip("*†")) > 50  # NSD in percent, from per_image.csv


def test_every_report_carries_its_provenance(built):
    for md in built.glob("*.md"):
        text = md.read_text()
        assert "## Provenance" in text, md.name
        for field in (
            "commit:",
            "pipeline (dvc.lock):",
            "splits:",
            "profile: test",
            "recipe: 8 epochs",
            "optimiser steps: ",
            "initialisation: from scratch (as params.yaml asks; train.json records no weights): dyglnet, ",
            "software: python",
            "device: Test GPU 9000",
            "data licences: kvasir (Kvasir-SEG): free for research and education",
        ):
            assert field in text, (md.name, field)
    for tex in built.glob("*.tex"):
        head = tex.read_text().splitlines()
        assert head[2] == r"% Packages: \usepackage{booktabs,xcolor,adjustbox}"
        assert any(line.startswith("% provenance splits: kvasir: sha256 ") for line in head[:12])


def test_same_inputs_give_byte_identical_outputs(built):
    again = report(built.parent, out="again")
    for name in EXPECTED:
        assert (built / name).read_bytes() == (again / name).read_bytes(), name


def test_seeds_give_mean_and_std(tmp_path):
    md, tex = comparison.build(inputs_of(make_tree(tmp_path, seeds=(1, 2), n=6)))
    assert re.search(r"\d+\.\d\d ± \d+\.\d\d", md) and "over 2 seeds" in md
    assert r"{\scriptsize$\pm$" in tex


def test_custom_model_entry_and_missing_logs(tmp_path):
    extra = {
        "smp_fpn_r18": {
            "model": "smp",
            "model_kwargs": {"arch": "FPN", "encoder": "resnet18"},
            "display_name": "FPN-R18",
            "family": "CNN",
        }
    }
    inp = inputs_of(
        make_tree(tmp_path, models=("dyglnet", "unet"), extra_models=extra, with_logs=False, latency=False, n=6)
    )
    md = comparison.build(inp)[0]
    assert "| CNN | FPN-R18 |" in md
    assert "Unconverged flag (U) not judged for 3 of 3 runs (0 with no validation split" in md
    assert "spread not recorded" in complexity.build(inp)[0]


def test_missing_run_names_the_file_and_writes_nothing(tmp_path):
    root = make_tree(tmp_path, models=("dyglnet", "unet"), n=6)
    (root / "results" / "kvasir" / "unet" / "seed42" / "metrics.json").unlink()
    with pytest.raises(ReportError, match=r"unet/seed42/metrics.json: missing"):
        report(root)
    assert not (root / "output").exists()


def test_malformed_per_image_csv_is_named(tmp_path):
    root = make_tree(tmp_path, models=("dyglnet", "unet"), n=6)
    pd.DataFrame({"image": ["a"]}).to_csv(root / "results" / "kvasir" / "unet" / "seed42" / "per_image.csv")
    with pytest.raises(ReportError, match=r"per_image.csv: no column 'id'"):
        report(root)


def test_report_stage_never_imports_torch(tmp_path):
    # a pretrained entry whose train.json records no weights: provenance asks weights_source, which needs no torch
    root = make_tree(tmp_path, models=("dyglnet", "unet", "h2former"), extra_models=H2FORMER_IN1K, n=6)
    code = (
        "import sys\n"
        "import pipeline.report as r\n"
        "assert 'pandas' not in sys.modules and 'matplotlib' not in sys.modules, 'heavy import at --help'\n"
        "assert r.main(['--out', 'out']) == 0\n"
        "bad = [m for m in ('torch', 'timm', 'segmentation_models_pytorch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (root / "out" / "comparison.md").is_file()
    text = (root / "out" / "comparison.md").read_text()
    assert "h2former_in1k: resnet <- timm/resnet34.tv_in1k (as params.yaml asks" in text


def _captions(tex: str) -> list[str]:
    return re.findall(r"\\caption\{(.*)\}$", tex, re.M)


def test_complexity_sets_the_papers_mdice_beside_ours_only_over_the_same_datasets(tmp_path):
    one = inputs_of(make_tree(tmp_path / "one", datasets=("ph2",), models=("dyglnet", "unet"), n=6))
    md, tex = complexity.build(one)
    header = next(line for line in md.splitlines() if line.startswith("| Family"))
    assert "Measured here mDice over PH2 (%)" in header and "Paper Table 7 mDice" not in header
    assert "88.60" not in md and "88.60" not in tex  # UNet's Table 7 mDice (seven datasets)
    assert "averages PH2 only, so the paper's mDice is not set beside it" in md
    assert "mean test Dice over PH2" in _captions(tex)[0]
    seven = ("kvasir", "cvc", "brain_mri", "isic2016", "ph2", "glas", "tnbc")
    md, _ = complexity.build(inputs_of(make_tree(tmp_path / "seven", datasets=seven, models=("dyglnet", "unet"), n=6)))
    header = next(line for line in md.splitlines() if line.startswith("| Family"))
    assert "Measured here mDice over 7 datasets (%)" in header and "Paper Table 7 mDice (%)" in header
    assert "| 88.60 |" in md and "averages the same datasets" in md


def _set_machines(root: Path, machines: dict[str, dict | None], latency_ms: dict[str, float]) -> None:
    """Give the fake complexity results a recorded ``machine`` (None: written before machines were recorded)."""
    for m, machine in machines.items():
        path = root / "results" / "complexity" / f"{m}.json"
        row = json.loads(path.read_text())
        if machine is None:
            row.pop("machine", None)
        else:
            row["machine"] = machine
        shift = latency_ms[m] - row["cpu_latency_ms"]
        for key in ("cpu_latency_ms", "cpu_latency_p10_ms", "cpu_latency_p90_ms"):
            row[key] += shift
        path.write_text(json.dumps(row))


def test_latency_columns_never_mix_machines(tmp_path):
    root = make_tree(tmp_path, models=("dyglnet", "unet", "unetpp", "attention_unet"), n=6)
    a = {"cpu": "Alpha CPU 9000", "gpu": None, "torch": "2.4.0", "threads": 8, "dtype": "float32"}
    b = {**a, "cpu": "Beta CPU 100", "threads": 2}
    # DyGLNet on a machine of its own (the fastest number, but another machine's); AttentionUNet's result from
    # before machines were recorded
    _set_machines(
        root,
        {"dyglnet": b, "unet": a, "unetpp": a, "attention_unet": None},
        {"dyglnet": 5.0, "unet": 30.0, "unetpp": 40.0, "attention_unet": 20.0},
    )
    inp = inputs_of(root)
    columns = complexity.latency_columns(inp, inp.main_models())
    assert [(c.device, c.tag) for c in columns] == [("cpu", "A"), ("cpu", "B"), ("cpu", complexity.NOT_RECORDED)]
    for column, models in zip(columns, [{"unet", "unetpp"}, {"dyglnet"}, {"attention_unet"}], strict=True):
        assert {m for m, cell in column.cells.items() if not cell.missing} == models

    md, tex = complexity.build(inp)
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| Family")).split(" | ")
    col = {name: header.index(f"Measured here CPU latency (ms), {name}") for name in ("machine A", "machine B")}
    col["none"] = header.index("Measured here CPU latency (ms), machine not recorded")
    row = {m: next(line for line in lines if f"| {m}" in line).split(" | ") for m in ("DyGLNet", "Unet ", "Unet++")}
    assert row["DyGLNet"][col["machine A"]] == "–" and row["DyGLNet"][col["machine B"]].startswith("**5.0**")
    assert row["Unet "][col["machine A"]].startswith("**30.0**") and row["Unet "][col["machine B"]] == "–"
    assert row["Unet++"][col["machine A"]].startswith("*40.0*") and row["Unet++"][col["none"]] == "–"
    attention = next(line for line in lines if "| AttentionUnet" in line).split(" | ")
    assert attention[col["none"]].startswith("20.0 ")  # not ranked: may come from several machines
    assert "machine A: Alpha CPU 9000, 8 threads, no GPU, torch 2.4.0, float32" in md
    assert "machine B: Beta CPU 100, 2 threads, no GPU, torch 2.4.0, float32" in md
    assert "values of different columns are not comparable" in md and "Machine not recorded:" in md
    assert "CPU latency (ms), machine B" in tex and "Alpha CPU 9000" in tex


def test_one_machine_gives_one_latency_column_named_under_the_table(tmp_path):
    root = make_tree(tmp_path, models=("dyglnet", "unet"), n=6)
    a = {"cpu": "Alpha CPU 9000", "gpu": "Test GPU 9000", "torch": "2.4.0", "threads": 8, "dtype": "float32"}
    _set_machines(root, {"dyglnet": a, "unet": a}, {"dyglnet": 12.0, "unet": 10.0})
    md, _ = complexity.build(inputs_of(root))
    header = next(line for line in md.splitlines() if line.startswith("| Family"))
    assert header.count("latency (ms)") == 1 and "CPU latency (ms), machine A" in header
    assert "Latency measured on machine A: Alpha CPU 9000, 8 threads, GPU Test GPU 9000" in md
    assert "not comparable" not in md and "Machine not recorded" not in md


def test_figures_md_embeds_each_figure_with_the_caption_printed_inside_it(built):
    md = (built / "figures.md").read_text()
    # the bubble plot's four main models (the ablation variant is in the ablation table), on the three datasets
    steps = "Optimiser steps made per run (train.json): isic2016: 24 (4 runs); kvasir: 24 (4 runs); synthetic"
    for stem in ("bubble", "qualitative", "val_curves"):
        assert f"]({stem}.png)" in md and f"({stem}.pdf)" in md
    bubble = md.split("](bubble.png)")[1].split("##")[0]
    assert (
        "Images: 32 × 32 px." in bubble and steps in bubble and "Datasets: Kvasir-SEG, ISIC2016, Synthetic." in bubble
    )
    assert "not the paper's recipe" in bubble and "at the size the models trained at (32 × 32)" in bubble
    assert "proportional to the mean test Dice" in bubble and "D: degenerate" in bubble  # the rows' flags
    qualitative = md.split("](qualitative.png)")[1].split("##")[0]
    assert "test images of Kvasir-SEG" in qualitative and "Datasets: Kvasir-SEG. Recipe" in qualitative
    assert "Optimiser steps made per run (train.json): kvasir: 24 (4 runs)." in qualitative
    curves = md.split("](val_curves.png)")[1].split("##")[0]
    assert "Validation Dice (%) per epoch" in curves and "isic2016: 24 (5 runs)" in curves  # every model's curve


def test_every_figure_states_its_caption_its_gflops_size_and_its_row_flags(tmp_path):
    inp = inputs_of(make_tree(tmp_path, models=("dyglnet", "unet", "attention_unet"), n=6))
    main = inp.main_models()
    gflops = captions.bubble_gflops(inp, main)
    assert gflops.axis == "GFLOPs (fvcore) at 32 × 32, the training size"
    assert gflops.values == [inp.complexity[m]["gflops_fvcore_train_size"] for m in main]
    rows = assemble.bubble_rows(inp, gflops.values)
    assert dict(zip(rows["label"], rows["flags"], strict=True)) == {
        inp.names[m]: summary.make_row(inp, m, inp.datasets).flags for m in main
    }
    text = captions.bubble_caption(inp, gflops, list(rows["flags"]))
    fig = figures.bubble_chart(rows, gflops_label=gflops.axis, caption=text)
    assert figures.caption_of(fig) == text and fig.axes[0].get_ylabel() == gflops.axis
    assert {"AttentionUnet (D)", "Unet (U)"} <= {t.get_text().split("\n")[0] for t in fig.axes[0].texts}
    figures.both_formats(fig)
    for m in main:  # results written before GFLOPs were counted at the training size
        del inp.complexity[m]["gflops_fvcore_train_size"]
    gflops = captions.bubble_gflops(inp, main)
    assert gflops.axis == "GFLOPs (fvcore) at 224 × 224 (models trained at 32 × 32)"
    assert gflops.values == [inp.complexity[m]["gflops_fvcore"] for m in main]
    assert "not at the 32 × 32 the models trained at" in captions.bubble_caption(inp, gflops, [])
    for m in main:  # ... but measured at the training size: those are the GFLOPs at the training size
        inp.complexity[m]["input_size"] = 32
    assert captions.bubble_gflops(inp, main).axis == "GFLOPs (fvcore) at 32 × 32, the training size"


def test_without_validation_split_the_curves_show_the_training_loss_and_say_why(tmp_path):
    inp = inputs_of(make_tree(tmp_path, datasets=("kvasir", "isic2016"), models=("dyglnet", "unet"), validation=False))
    lines, losses = assemble.curves(inp)
    assert losses == {"Kvasir-SEG", "ISIC2016"} and set(lines) == losses
    epochs, values = lines["Kvasir-SEG"]["DyGLNet"]
    np.testing.assert_allclose(values, 1 / epochs)  # log.csv's train_loss
    caption = captions.curves_caption(inp, losses)
    fig = figures.val_curves(lines, "DyGLNet", losses=losses, caption=caption)
    words = [figures.caption_of(fig)] + [ax.get_title() for ax in fig.axes] + [ax.get_ylabel() for ax in fig.axes]
    assert "no validation split: training loss shown; the last epoch was kept" in figures.caption_of(fig)
    assert all("no validation split" in ax.get_title() and ax.get_ylabel() == "training loss" for ax in fig.axes[:2])
    assert not any("no training log" in w for w in words + [t.get_text() for ax in fig.axes for t in ax.texts])
    plt.close(fig)


def test_the_curves_say_no_training_log_only_when_there_is_none(tmp_path):
    inp = inputs_of(make_tree(tmp_path, models=("dyglnet", "unet"), with_logs=False, n=6))
    lines, losses = assemble.curves(inp)
    assert lines == {} and losses == set()
    fig = figures.val_curves(lines, "DyGLNet", losses=losses, caption=captions.curves_caption(inp, losses))
    assert figures.NO_LOG in [t.get_text() for t in fig.axes[0].texts]
    plt.close(fig)


def test_footnotes_match_the_typesetting(built):
    """Markdown prints intervals in brackets, LaTeX as super-/subscript offsets: the notes say which."""
    for tex in built.glob("*.tex"):
        assert "in brackets" not in tex.read_text(), tex.name
    tex = (built / "complexity.tex").read_text()
    assert "confidence interval as super-/subscript offsets" in tex
    assert "10th--90th percentile as super-/subscript offsets from the median" in tex
    assert re.search(r"\d\$\^\{\+[\d.]+\}_\{-[\d.]+\}\$", tex)  # ... which is how the cells are set
    md = (built / "complexity.md").read_text()
    assert "confidence interval in brackets" in md and "10th–90th percentile in brackets" in md


def test_every_caption_names_the_datasets_and_the_recipe(built):
    recipe = "Recipe: 32 px, 8 epochs, batch 4, lr 0.001: not the paper's recipe (224 px, 130 epochs, batch 16"
    for md in built.glob("*.md"):
        text = md.read_text()
        if initialisation.NONE_LINE in text:  # no table, nothing measured: the one line says so
            continue
        assert f"Datasets: Kvasir-SEG, ISIC2016, Synthetic. {recipe}" in text, md.name
    captions = [c for tex in built.glob("*.tex") for c in _captions(tex.read_text())]
    # Tables 2, 4, synthetic, HD95, ablation, ablation cost, complexity; ranking: stability, per dataset ranks and
    # tests, consensus
    assert len(captions) == 7 + 1 + 2 * 3 + 1
    for caption in captions:
        if caption.startswith("Cost of the ablation variants"):
            assert "untrained models: no dataset or recipe involved" in caption
            continue
        assert "Datasets: " in caption and recipe in caption, caption
    table2 = next(c for c in captions if "Table 2" in c)
    assert "Datasets: Kvasir-SEG. Recipe" in table2  # that table's datasets


def test_recipe_text_says_whether_and_how_it_differs_from_the_papers(tmp_path):
    paper_recipe = {"epochs": 130, "img_size": 224, "batch_size": 16, "lr": 0.001}
    inp = inputs_of(make_tree(tmp_path / "a", models=("dyglnet", "unet"), n=6, train=paper_recipe))
    assert summary.recipe_text(inp, inp.models) == (
        "224 px, 130 epochs, batch 16, lr 0.001: the paper's recipe (224 px, 130 epochs, batch 16, lr 0.001)"
    )
    override = {"dyglnet": {}, "unet": {"batch_size": 8}}
    inp = inputs_of(make_tree(tmp_path / "b", models=(), extra_models=override, n=6, train=paper_recipe))
    assert summary.recipe_text(inp, inp.models).endswith(
        "(Unet: batch 8): not the paper's recipe (224 px, 130 epochs, batch 16, lr 0.001); batch size differs"
    )


def test_paper_vs_ours_states_the_recipe_and_whether_the_paper_lies_in_our_interval(built):
    text = (built / "paper_vs_ours.md").read_text()
    assert "image size, budget and batch size differ" in text
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| Kvasir-SEG |")]
    assert rows and "Paper in our 95% CI |" in text
    for row in rows:
        low, high = map(float, re.search(r"\(([\d.]+)–([\d.]+)\)", row[3]).groups())
        assert row[6].strip(" |") == ("yes" if low <= float(row[4]) <= high else "no"), row


def test_claims_states_its_rule_and_is_inconclusive_on_small_bins(built):
    text = (built / "claims.md").read_text()
    assert '"inconclusive"' in text and "fewer than 20 images" in text and "flagged unconverged (U)" in text
    assert "Small samples: any verdict or paired test on fewer than 20 images" in text
    small = re.findall(r"Verdict \(small-object claim\): (.*)", text)
    assert len(small) == 3 and all(v.startswith("Small (n=4): inconclusive (") for v in small), small
    assert all("(n < 20: 4 images;" in v for v in small)
    assert "not supported" not in "".join(small) and "best, not separable" not in text


H2FORMER_IN1K = {"h2former_in1k": {"model": "h2former", "model_kwargs": {"pretrained": True}}}
SWIN_IN1K = {"model": "swinunet", "model_kwargs": {"pretrained": True}, "display_name": "SwinUnet (IN-1k)"}
SWIN_RECORD = {  # as pipeline.train writes it for a Hub backbone (models.pretrained.loaded_weights)
    "swin": {
        "source": "hub",
        "library": "timm 1.0.19",
        "name": "swin_tiny_patch4_window7_224.ms_in1k",
        "id": "timm/swin_tiny_patch4_window7_224.ms_in1k",
        "revision": "main",
        "commit": "a" * 40,
        "file": "model.safetensors",
        "sha256": "b" * 64,
    }
}


def pair_tree(root: Path, qualities: dict, **kw) -> Path:
    """DyGLNet, UNet and SwinUnet from scratch, and SwinUnet pretrained (``swinunet_in1k``), on two datasets."""
    return make_tree(
        root,
        datasets=("kvasir", "isic2016"),
        models=("dyglnet", "unet", "swinunet"),
        extra_models={"swinunet_in1k": SWIN_IN1K},
        qualities=qualities,
        weights={"swinunet_in1k": SWIN_RECORD, "swinunet": {}, "unet": {}},
        **kw,
    )


def test_initialisation_without_a_pair_says_so_in_one_line(built):
    md, tex = (built / "initialisation.md").read_text(), (built / "initialisation.tex").read_text()
    assert initialisation.NONE_LINE in md and "| Family" not in md and "## Provenance" in md
    assert f"% {initialisation.NONE_LINE}" in tex and r"\begin{table" not in tex


def test_initialisation_sets_scratch_and_pretrained_side_by_side_and_ranks_the_reference(tmp_path):
    better = pair_tree(tmp_path / "better", {"dyglnet": (1, 0), "swinunet": (3, 1), "swinunet_in1k": (0, 0)}, n=12)
    inp = inputs_of(better)
    md, tex = initialisation.build(inp)
    row = next(line for line in md.splitlines() if line.startswith("| Transformer | SwinUnet / SwinUnet (IN-1k) |"))
    cells = [c.strip() for c in row.split("|")[3:-1]]
    assert len(cells) == 6  # (scratch, pretrained, delta) x 2 datasets, each with its CI
    for k, d in enumerate(inp.datasets):
        scratch = summary.per_image(inp, d, "swinunet", "dice")
        pretrained = summary.per_image(inp, d, "swinunet_in1k", "dice")
        assert cells[3 * k].startswith(f"{scratch.mean():.2f} (")
        assert cells[3 * k + 1].startswith(f"{pretrained.mean():.2f} (")
        low, high = map(float, re.search(r"\(([-\d.]+)–([-\d.]+)\)", cells[3 * k + 2]).groups())
        delta = (pretrained - scratch).mean()
        assert cells[3 * k + 2].startswith(f"{delta:.2f} (") and low <= round(delta, 2) <= high and low > 0
    assert (
        "Kvasir-SEG 1st → 2nd of 3; ISIC2016 1st → 2nd of 3; mDice over the 2 datasets 1st → 2nd of 3. "
        "DyGLNet's rank changes on Kvasir-SEG, ISIC2016 and by mDice." in md
    )
    assert "| SwinUnet / SwinUnet (IN-1k) | `swinunet` | `swinunet_in1k` | `pretrained: true` |" in md
    assert (
        "- initialisation: from scratch: unet, swinunet; from scratch (as params.yaml asks; train.json records no "
        "weights): dyglnet; swinunet_in1k: swin <- timm/swin_tiny_patch4_window7_224.ms_in1k (timm 1.0.19, revision "
        f"main, snapshot {'a' * 40}, model.safetensors, sha256 {'b' * 64})" in md
    )
    assert "\\label{tab:initialisation}" in tex and "1st $\\rightarrow$ 2nd of 3" in tex
    assert re.search(r"SwinUnet / SwinUnet \(IN-1k\) & [\d.]+\$\^\{\+", tex)

    worse = pair_tree(tmp_path / "worse", {"dyglnet": (0, 0), "swinunet": (3, 1), "swinunet_in1k": (2, 0)}, n=12)
    md, _ = initialisation.build(inputs_of(worse))
    assert "DyGLNet's rank does not change on any dataset or by mDice." in md


def test_initialisation_delta_over_seeds_is_mean_and_std(tmp_path):
    md, tex = initialisation.build(inputs_of(pair_tree(tmp_path, {}, seeds=(1, 2), n=6)))
    row = next(line for line in md.splitlines() if "SwinUnet / SwinUnet (IN-1k)" in line and "±" in line)
    assert len(re.findall(r"-?\d+\.\d\d ± \d+\.\d\d", row)) == 6
    assert "each seed's difference" in md and "over 2 seeds" in md


def test_initialisation_pairs_only_entries_that_differ_in_their_weights_alone():
    from types import SimpleNamespace

    def fake(entries: dict[str, tuple[str, dict, str]]):
        """key -> (setup, weight arguments, family)"""
        return SimpleNamespace(
            models=list(entries),
            setups={k: v[0] for k, v in entries.items()},
            weights={k: v[1] for k, v in entries.items()},
            families={k: v[2] for k, v in entries.items()},
        )

    inp = fake(
        {
            "dyglnet": ("d", {}, "Ours"),
            "swinunet": ("s", {"pretrained": False}, "Transformer"),
            "swinunet_b8": ("s-batch8", {}, "Transformer"),
            "swinunet_in1k": ("s", {"pretrained": True}, "Transformer"),
            "swinunet_b8_in1k": ("s-batch8", {"pretrained_file": "weights/swin.pth"}, "Transformer"),
            "swinunet_nofile": ("s", {"pretrained_file": None}, "Transformer"),
            "m2snet_in1k": ("m", {"pretrained": True}, "CNN"),  # no scratch partner
            "variant_a": ("v", {}, "Ablation"),
            "variant_b": ("v", {"pretrained": True}, "Ablation"),
        }
    )
    assert initialisation.pairs(inp) == [("swinunet", "swinunet_in1k"), ("swinunet_b8", "swinunet_b8_in1k")]
