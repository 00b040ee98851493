"""Report stage: the paper's tables and figures, from the evaluation and complexity outputs only.

    python -m pipeline.report [--results results] [--prepared data/prepared] [--out reports]

Reads the runs named by params.yaml (``datasets``, ``models``, ``seeds``) from
``results/<dataset>/<model>/seed<seed>/`` and ``results/complexity/<model>.json``, and writes into
``reports/``: comparison, ablation and complexity tables (``.md`` and ``.tex``), ``significance.md``,
``paper_vs_ours.md``, ``bubble.png``/``bubble.pdf`` and ``qualitative.png``. The paper's own numbers
come from ``reports/paper/*.csv`` and appear only in columns and files labelled as the paper's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from datasets import DatasetError, get_adapter
from datasets.fsutil import atomic_write_bytes, atomic_write_text
from models import model_info
from pipeline.cli import UserError, run
from pipeline.params import load_params
from reports.figures import bubble_chart, figure_bytes, qualitative_grid
from reports.stats import wilcoxon_vs_reference
from reports.tables import (
    COMPARISON_METRICS,
    aggregate_seeds,
    family_rank,
    format_cells,
    rank_columns,
    to_latex,
    to_markdown,
    wide_table,
)

PAPER_DIR = Path(__file__).resolve().parents[1] / "reports" / "paper"
THOP_NOTE = (
    "Parameters and GFLOPs are measured here with `sum(p.numel())` and fvcore's FlopCountAnalysis at "
    "1x3x224x224 (multiply-accumulates). The paper's Table 7 used `thop`, which counts differently (it skips "
    "parameters held directly by custom modules, counts modules registered under two names twice, counts a "
    "k2/s2 transposed convolution per output pixel and ignores functional convolutions and attention "
    "matmuls), so the two disagree for several models; the Table 7 columns are the paper's values."
)


class ReportError(UserError):
    """A run named in params.yaml whose outputs are missing or malformed."""


def run_dir(results: Path, dataset: str, model: str, seed: int) -> Path:
    """Where the evaluation of one run lives."""
    return results / dataset / model / f"seed{seed}"


def dataset_label(key: str) -> str:
    """The paper's name of a dataset (``Kvasir-SEG``), or the key for datasets outside the paper."""
    try:
        return get_adapter(key).display_name or key
    except DatasetError:
        return key


def load_runs(results: Path, datasets: list[str], models: list[str], seeds: list[int]):
    """(run summary table, per-image Dice table) of every declared run; a missing file is an error."""
    summary_rows, per_image = [], []
    for d in datasets:
        for m in models:
            for s in seeds:
                folder = run_dir(results, d, m, s)
                metrics_file, per_image_file = folder / "metrics.json", folder / "per_image.csv"
                for f in (metrics_file, per_image_file):
                    if not f.is_file():
                        raise ReportError(f"{f}: missing; run `dvc repro` (or pipeline.evaluate) for {d}/{m}/seed{s}")
                try:
                    metrics = json.loads(metrics_file.read_text())
                    table = pd.read_csv(per_image_file, dtype={"id": str})
                except (json.JSONDecodeError, pd.errors.ParserError) as err:
                    raise ReportError(f"{folder}: unreadable evaluation output: {err}") from err
                for name in (*COMPARISON_METRICS, "hd95"):
                    if name not in metrics or "mean" not in metrics[name]:
                        raise ReportError(f"{metrics_file}: no mean for metric {name!r}")
                    summary_rows.append(
                        {"dataset": d, "model": m, "seed": s, "metric": name, "value": metrics[name]["mean"]}
                    )
                per_image.append(table.assign(dataset=d, model=m, seed=s)[["dataset", "model", "seed", "id", "dice"]])
    return pd.DataFrame(summary_rows), pd.concat(per_image, ignore_index=True)


def load_complexity(results: Path, models: list[str]) -> pd.DataFrame:
    """One row per model from ``results/complexity/<model>.json``."""
    rows = []
    for m in models:
        f = results / "complexity" / f"{m}.json"
        if not f.is_file():
            raise ReportError(f"{f}: missing; run the complexity stage for {m}")
        rows.append(json.loads(f.read_text()))
    return pd.DataFrame(rows).set_index("model")


def family_sorted(models: list[str]) -> list[str]:
    """Models in the paper's row order: CNN, Transformer, Hybrid, others, then Ours."""
    return sorted(models, key=lambda m: (family_rank(model_info(m).family), models.index(m)))


def model_rows(models: list[str]) -> dict[str, tuple[str, str]]:
    return {m: (model_info(m).family, model_info(m).display_name) for m in models}


def paper_groups(datasets: list[str]) -> list[tuple[str, list[str]]]:
    """Datasets grouped as the paper's Tables 2-5; datasets outside the paper get a group each."""
    paper = pd.read_csv(PAPER_DIR / "comparison.csv")
    table_of = dict(zip(paper["dataset"], paper["table"], strict=False))
    groups: dict[str, list[str]] = {}
    for d in datasets:
        label = dataset_label(d)
        groups.setdefault(table_of.get(label, f"{label} (not a dataset of the paper)"), []).append(d)
    return sorted(groups.items(), key=lambda kv: kv[0])


def render_table(means, stds, ns, caption: str, label: str, lower_is_better: set[str] = frozenset()):
    """(markdown, latex) of one table with best/second-best marking per column."""
    ranks = pd.concat(
        [rank_columns(means[[c]], higher_is_better=c[-1] not in lower_is_better) for c in means.columns], axis=1
    )
    md = to_markdown(format_cells(means, stds, ns, latex=False), ranks)
    tex = to_latex(format_cells(means, stds, ns, latex=True), ranks, caption, label)
    return md, tex


def comparison_report(agg, datasets, models, seeds):
    main = [m for m in models if model_info(m).family != "Ablation"]
    md, tex = [_header("Comparison with the baselines (paper Tables 2-5)", seeds)], []
    for title, group in paper_groups(datasets):
        means, stds, ns = wide_table(
            agg, group, main, COMPARISON_METRICS, model_rows(main), {d: dataset_label(d) for d in group}
        )
        m, t = render_table(
            means, stds, ns, f"Segmentation results, {title} layout (\\%).", f"tab:comparison-{_slug(title)}"
        )
        heading = title if not title.startswith("Table") else f"{title}: {', '.join(dataset_label(d) for d in group)}"
        md += [f"## {heading}", "", m, ""]
        tex.append(t)
    return "\n".join(md), "\n".join(tex)


def ablation_report(agg, datasets, models, seeds, reference: str):
    variants = [m for m in models if model_info(m).family == "Ablation"]
    if not variants:
        text = "# Ablation (paper Table 6)\n\nNo ablation variant is enabled in params.yaml `models`.\n"
        return text, "% No ablation variant is enabled in params.yaml models.\n"
    rows = variants + ([reference] if reference in models else [])
    labels = {m: ("Variant" if m != reference else "Full model", model_info(m).display_name) for m in rows}
    means, stds, ns = wide_table(agg, datasets, rows, ["dice", "iou"], labels, {d: dataset_label(d) for d in datasets})
    md, tex = render_table(means, stds, ns, "Ablation of DyGLNet's components (Dice and IoU, \\%).", "tab:ablation")
    return "\n".join([_header("Ablation (paper Table 6)", seeds), md, "", _variant_notes(variants)]), tex


def complexity_report(agg, complexity: pd.DataFrame, models):
    main = family_sorted([m for m in models if model_info(m).family != "Ablation"])
    paper = pd.read_csv(PAPER_DIR / "complexity.csv").set_index("model")
    mdice = agg[agg["metric"] == "dice"].groupby("model")["mean"].mean()
    rows = model_rows(main)
    index = pd.MultiIndex.from_tuples([rows[m] for m in main], names=["Family", "Model"])
    cols = {
        ("Measured", "mDice (%)"): [mdice.get(m, np.nan) for m in main],
        ("Measured", "#Param (M)"): [complexity.loc[m, "params"] / 1e6 for m in main],
        ("Measured", "GFLOPs (fvcore)"): [complexity.loc[m, "gflops_fvcore"] for m in main],
        ("Measured", "CPU latency (ms)"): [complexity.loc[m, "cpu_latency_ms"] for m in main],
    }
    if complexity["gpu_latency_ms"].notna().any():
        cols[("Measured", "GPU latency (ms)")] = [complexity.loc[m, "gpu_latency_ms"] for m in main]
    for ours_name, paper_col in (
        ("#Param (M)", "params_M"),
        ("GFLOPs (thop)", "GFLOPs"),
        ("mDice (%)", "mDice_percent"),
    ):
        cols[("Paper Table 7", ours_name)] = [_paper_value(paper, rows[m][1], paper_col) for m in main]
    means = pd.DataFrame(cols, index=index)
    means = means.loc[:, means.notna().any()]
    ns = pd.DataFrame(1, index=means.index, columns=means.columns)
    ranked = means[[c for c in means.columns if c[0] == "Measured"]]
    lower = {c[-1] for c in ranked.columns if c[-1] != "mDice (%)"}
    md_t, tex = render_table(
        ranked,
        ranked * 0,
        ns[ranked.columns],
        "Complexity (measured) at 224 x 224.",
        "tab:complexity",
        lower_is_better=lower,
    )
    paper_cols = means[[c for c in means.columns if c[0] != "Measured"]]
    md = [
        "# Complexity (paper Table 7, measured here)\n",
        "Generated by `dvc repro` (stages `complexity` and `report`). Parameters and fvcore GFLOPs of each "
        "model at 1x3x224x224 (its fixed size where it has one); latency: median forward time of one image in "
        "eval mode on this machine; mDice: mean test Dice over the datasets of this run. Best per column in "
        "**bold**, second best in *italics* (higher mDice, lower everything else).\n",
        md_t,
        "",
    ]
    if not paper_cols.empty:
        flat = paper_cols.copy()
        flat.columns = [c[-1] for c in flat.columns]
        md += [
            "### The paper's Table 7 values (the paper's numbers, not measured here)",
            "",
            flat.reset_index().to_markdown(index=False, floatfmt=".2f"),
            "",
        ]
    md += [
        f"mDice is the mean over the datasets of this run: {', '.join(sorted(agg['dataset'].unique()))}.",
        "",
        THOP_NOTE,
        "",
    ]
    return "\n".join(md), tex


def paper_vs_ours(agg, complexity: pd.DataFrame, datasets, models) -> str:
    """Every reproduced number beside the paper's value, for the datasets and models that were run."""
    paper_cmp = pd.read_csv(PAPER_DIR / "comparison.csv")
    paper_abl = pd.read_csv(PAPER_DIR / "ablation.csv").rename(columns={"variant": "model"})
    lines = [
        "# Paper vs ours",
        "",
        "Our measured values beside the values printed in the paper (Zhao et al., Pattern Recognition 2025).",
        "`diff` = ours - paper. Rows appear only where the paper reports the same dataset, model and metric.",
        "",
    ]
    ours = agg.assign(
        dataset_label=agg["dataset"].map(dataset_label),
        model_label=agg["model"].map(lambda m: model_info(m).display_name),
        metric_label=agg["metric"].map(lambda k: {"iou": "IoU"}.get(k, k.capitalize())),
    )
    for title, paper in (("Segmentation metrics (Tables 2-5), %", paper_cmp), ("Ablation (Table 6), %", paper_abl)):
        merged = ours.merge(
            paper,
            left_on=["dataset_label", "model_label", "metric_label"],
            right_on=["dataset", "model", "metric"],
            suffixes=("", "_paper"),
        )
        lines += [f"## {title}", ""]
        if merged.empty:
            lines += [
                "No run of this configuration matches a dataset and model of this paper table "
                f"(datasets run: {', '.join(dataset_label(d) for d in datasets)}).",
                "",
            ]
            continue
        table = pd.DataFrame(
            {
                "Dataset": merged["dataset_label"],
                "Model": merged["model_label"],
                "Metric": merged["metric_label"],
                "Ours": merged["mean"],
                "Paper": merged["value_percent"],
                "diff": merged["mean"] - merged["value_percent"],
            }
        )
        lines += [table.to_markdown(index=False, floatfmt=".2f"), ""]
    paper_cx = pd.read_csv(PAPER_DIR / "complexity.csv").set_index("model")
    cx_rows = []
    for m in models:
        label = model_info(m).display_name
        if label in paper_cx.index:
            ours_p, ours_g = complexity.loc[m, "params"] / 1e6, complexity.loc[m, "gflops_fvcore"]
            p = paper_cx.loc[label]
            cx_rows.append(
                {
                    "Model": label,
                    "#Param ours (M)": ours_p,
                    "#Param paper (M)": p["params_M"],
                    "diff": ours_p - p["params_M"],
                    "GFLOPs ours (fvcore)": ours_g,
                    "GFLOPs paper (thop)": p["GFLOPs"],
                    "diff ": ours_g - p["GFLOPs"],
                }
            )
    lines += ["## Complexity (Table 7)", ""]
    if cx_rows:
        lines += [pd.DataFrame(cx_rows).to_markdown(index=False, floatfmt=".2f"), "", THOP_NOTE, ""]
    else:
        lines += ["No model of this run appears in Table 7.", ""]
    return "\n".join(lines)


def significance_report(per_image: pd.DataFrame, reference: str, models: list[str]) -> str:
    lines = [
        "# Significance: paired Wilcoxon signed-rank tests",
        "",
        f"Per dataset, {model_info(reference).display_name} against every other model over per-image Dice "
        "on the test split (seeds averaged per image). Two-sided; `diff` = reference - model, in Dice points.",
        "",
    ]
    if reference not in set(per_image["model"]):
        return "\n".join(lines + [f"The reference model {reference!r} was not run.", ""])
    result = wilcoxon_vs_reference(per_image, reference)
    order = {m: i for i, m in enumerate(family_sorted(models))}
    result = result.sort_values("model", key=lambda col: col.map(order), kind="stable")
    for dataset, group in result.groupby("dataset", sort=False):
        table = pd.DataFrame(
            {
                "Model": group["model"].map(lambda m: model_info(m).display_name),
                "images": group["n_images"],
                "median diff": group["median_diff"].round(2),
                "mean diff": group["mean_diff"].round(2),
                "p-value": group["p_value"].map(lambda p: f"{p:.3g}"),
                "p < 0.05": np.where(group["p_value"] < 0.05, "yes", "no"),
            }
        )
        lines += [f"## {dataset_label(dataset)}", "", table.to_markdown(index=False), ""]
    return "\n".join(lines)


def bubble_rows(agg, complexity, models) -> pd.DataFrame:
    main = [m for m in models if model_info(m).family != "Ablation"]
    mdice = agg[agg["metric"] == "dice"].groupby("model")["mean"].mean()
    return pd.DataFrame(
        {
            "label": [model_info(m).display_name for m in main],
            "params_m": [complexity.loc[m, "params"] / 1e6 for m in main],
            "gflops": [complexity.loc[m, "gflops_fvcore"] for m in main],
            "mdice": [mdice[m] for m in main],
        }
    )


def qualitative_samples(prepared: Path, results: Path, dataset: str, models: list[str], seed: int, count: int):
    """Evenly spaced test images of ``dataset`` with ground truth and each model's saved prediction."""
    folder = prepared / dataset
    ids = json.loads((folder / "ids.json").read_text())
    test = json.loads((folder / "split.json").read_text())["test"]
    picks = [test[i] for i in np.linspace(0, len(test) - 1, num=min(count, len(test))).round().astype(int)]
    images, masks = np.load(folder / "images.npy", mmap_mode="r"), np.load(folder / "masks.npy", mmap_mode="r")
    row_of = {k: i for i, k in enumerate(ids)}
    samples = []
    for image_id in picks:
        image, truth = np.asarray(images[row_of[image_id]]), np.asarray(masks[row_of[image_id]]) > 0
        preds = {}
        for m in models:
            f = run_dir(results, dataset, m, seed) / "pred" / f"{image_id}.png"
            pred = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            if pred is None:
                raise ReportError(f"{f}: missing or unreadable prediction")
            if pred.shape != truth.shape:
                pred = cv2.resize(pred, truth.shape[::-1], interpolation=cv2.INTER_NEAREST)
            preds[model_info(m).display_name] = pred > 127
        samples.append(
            {"title": f"{dataset_label(dataset)} {image_id}", "image": image, "truth": truth, "preds": preds}
        )
    return samples


def _paper_value(paper: pd.DataFrame, label: str, column: str) -> float:
    return float(paper.loc[label, column]) if label in paper.index else np.nan


def _header(title: str, seeds) -> str:
    seeds_text = (
        f" Seeds: {', '.join(map(str, seeds))}" + (" (mean ± std over seeds)." if len(seeds) > 1 else ".")
        if seeds
        else ""
    )
    return (
        f"# {title}\n\nGenerated by `dvc repro` (stage `report`) from this repository's own runs; values in "
        f"percent, two decimals, averaged over test images.{seeds_text} Best per column in **bold**, second "
        "best in *italics* (red and blue in the LaTeX version).\n"
    )


def _variant_notes(variants: list[str]) -> str:
    from models.dyglnet import ABLATION_VARIANTS

    lines = ["Settings of each variant (the paper leaves them open; see README, 'Ablation variants'):", ""]
    for v in variants:
        if v in ABLATION_VARIANTS:
            settings = ", ".join(f"{k}={val!r}" for k, val in ABLATION_VARIANTS[v][1].items())
            lines.append(f"- {ABLATION_VARIANTS[v][0]} (`{v}`): `{settings}`")
    return "\n".join(lines) + "\n"


def _slug(text: str) -> str:
    return "".join(c.lower() if c.isalnum() else "-" for c in text).strip("-")


def write_reports(
    results: Path, prepared: Path, out: Path, datasets: list[str], models: list[str], seeds: list[int], options: dict
) -> list[Path]:
    """Build every report file from the pipeline outputs; returns the paths written."""
    reference = options.get("reference_model", "dyglnet")
    runs, per_image = load_runs(results, datasets, models, seeds)
    agg = aggregate_seeds(runs)
    complexity = load_complexity(results, models)
    files: dict[str, bytes | str] = {}
    files["comparison.md"], files["comparison.tex"] = comparison_report(agg, datasets, models, seeds)
    files["ablation.md"], files["ablation.tex"] = ablation_report(agg, datasets, models, seeds, reference)
    files["complexity.md"], files["complexity.tex"] = complexity_report(agg, complexity, models)
    files["paper_vs_ours.md"] = paper_vs_ours(agg, complexity, datasets, models)
    seed_mean = per_image.groupby(["dataset", "model", "id"], as_index=False)["dice"].mean()
    files["significance.md"] = significance_report(seed_mean, reference, models)
    bubbles = bubble_rows(agg, complexity, models)
    files["bubble.png"] = figure_bytes(bubble_chart(bubbles), "png")
    files["bubble.pdf"] = figure_bytes(bubble_chart(bubbles), "pdf")
    main = family_sorted([m for m in models if model_info(m).family != "Ablation"])
    qual_dataset = options.get("qualitative_dataset") or datasets[0]
    samples = qualitative_samples(
        prepared, results, qual_dataset, main, seeds[0], int(options.get("qualitative_images", 4))
    )
    files["qualitative.png"] = figure_bytes(
        qualitative_grid(samples, [model_info(m).display_name for m in main]), "png"
    )
    written = []
    for name, content in files.items():
        path = out / name
        if isinstance(content, bytes):
            atomic_write_bytes(path, content)
        else:
            atomic_write_text(path, content if content.endswith("\n") else content + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", default="results")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--out", default="reports")
    args = parser.parse_args(argv)
    params = load_params()
    datasets, models, seeds = list(params.datasets), list(params.models), list(params.seeds)
    if not datasets or not models:
        raise SystemExit("error: params.yaml must list at least one dataset and one model")
    try:
        written = write_reports(
            Path(args.results), Path(args.prepared), Path(args.out), datasets, models, seeds, params.report.model_dump()
        )
    except ReportError as err:
        raise SystemExit(f"error: {err}") from err
    print(f"wrote {len(written)} report files to {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
