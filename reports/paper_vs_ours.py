"""``paper_vs_ours.md``: every reproduced number beside the paper's value and the difference.

Rows follow the other tables' order (datasets as run, models by family, metrics as the paper prints
them); "–" where the paper has no value. One line says whether our recipe is the paper's and how it
differs; each reproduced value says whether the paper's value lies inside our 95% interval (the bootstrap CI
over images with one seed; with several, the two-level bootstrap interval, seeds then images, printed after the
standard deviation between seeds).
"""

from __future__ import annotations

from engine.metric_names import METRIC_LABELS, metric_key
from reports import paper, provenance, summary
from reports.complexity import THOP_NOTE
from reports.inputs import Inputs
from reports.table import fmt, interval_text, markdown_table


def _diff(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None:
        return "–"
    text = fmt(ours - theirs)
    return text if text.startswith("-") or float(text) == 0 else "+" + text


def inside(cell, theirs: float | None) -> str:
    """Whether the paper's value lies within our interval (ends included): "yes"/"no"; "–" without either."""
    if theirs is None or cell.missing or cell.low is None or cell.high is None:
        return "–"
    return "yes" if cell.low <= theirs <= cell.high else "no"


def _metric_rows(inp: Inputs, table: str, models: list[str], model_column: str) -> list[list[str]]:
    frame = paper.read(table)
    metrics = list(dict.fromkeys(metric_key(m) for m in frame["metric"]))
    rows = []
    for d in inp.datasets:
        label = inp.dataset_names[d]
        if label not in set(frame["dataset"]):
            continue
        for m in models:
            for k in metrics:
                theirs = paper.paper_value(
                    table, dataset=label, **{model_column: inp.names[m]}, metric=METRIC_LABELS[k]
                )
                if theirs is None:
                    continue
                cell = summary.metric_cell(inp, d, m, k)
                ours = None if cell.missing else cell.value
                rows.append(
                    [
                        label,
                        inp.names[m],
                        METRIC_LABELS[k],
                        fmt(ours) + interval_text(cell, 2),
                        fmt(theirs),
                        _diff(ours, theirs),
                        inside(cell, theirs),
                    ]
                )
    return rows


def build(inp: Inputs) -> str:
    lines = [
        "# Paper vs ours",
        "",
        f"Our measured values beside the values printed in the paper ({paper.CITATION}). `diff` = ours − "
        f"paper. Ours: {_uncertainty(inp)}. Rows appear where the paper reports the same dataset, model and "
        "metric; – where a value is missing.",
        "",
        summary.setting_text(inp, inp.models),
        "",
    ]
    interval = "95% CI" if len(inp.seeds) == 1 else "95% interval"
    headers = ["Dataset", "Model", "Metric", "Ours", "Paper", "diff", f"Paper in our {interval}"]
    run_names = ", ".join(inp.dataset_names[d] for d in inp.datasets)
    for title, table, models, column in (
        ("Segmentation metrics (Tables 2-5), %", "comparison", inp.main_models(), "model"),
        ("Ablation (Table 6), %", "ablation", [*inp.variants(), inp.reference], "variant"),
    ):
        rows = _metric_rows(inp, table, models, column)
        lines += [f"## {title}", ""]
        if rows:
            lines += [markdown_table(headers, rows, "lllrrrl"), ""]
        else:
            lines += [
                f"No run of this configuration matches a dataset and model of this table (datasets run: {run_names}).",
                "",
            ]
    cx = []
    for m in inp.main_models():
        c = inp.complexity[m]
        p_params = paper.paper_value("complexity", model=inp.names[m], column="params_M")
        p_gflops = paper.paper_value("complexity", model=inp.names[m], column="GFLOPs")
        ours_p, ours_g = c["params"] / 1e6, float(c["gflops_fvcore"])
        cx.append(
            [
                inp.names[m],
                fmt(ours_p),
                fmt(p_params),
                _diff(ours_p, p_params),
                fmt(ours_g),
                fmt(p_gflops),
                _diff(ours_g, p_gflops),
            ]
        )
    lines += ["## Complexity (Table 7)", ""]
    headers = [
        "Model",
        "#Param ours (M)",
        "#Param paper (M)",
        "diff (M)",
        "GFLOPs ours (fvcore)",
        "GFLOPs paper (thop)",
        "diff (G)",
    ]
    lines += [markdown_table(headers, cx), "", THOP_NOTE, "", provenance.markdown_block(inp.provenance)]
    return "\n".join(lines)


def _uncertainty(inp: Inputs) -> str:
    if len(inp.seeds) > 1:
        return (
            f"mean over {len(inp.seeds)} seeds ± standard deviation between the seeds' means, with the 95% two-level "
            "bootstrap interval (seeds resampled, then test images) in brackets"
        )
    return "mean over test images with its 95% bootstrap confidence interval"
