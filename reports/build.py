"""Build step of the report stage: every output file, in memory, from the loaded :class:`Inputs`.

``build_reports(inputs)`` returns ``{file name: text or bytes}`` for ``output/``; nothing here reads or
writes files, so the write step can put them all in place only when every one was built.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from engine.metric_names import PAPER_METRICS
from reports import (
    ablation,
    claims,
    comparison,
    complexity,
    figures,
    initialisation,
    paper_vs_ours,
    significance,
    summary,
    transfer,
)
from reports.flags import val_dice_percent
from reports.inputs import Inputs


def bubble_rows(inp: Inputs) -> pd.DataFrame:
    models = inp.main_models()
    return pd.DataFrame(
        {
            "label": [inp.names[m] for m in models],
            "family": [inp.families[m] for m in models],
            "params_m": [inp.complexity[m]["params"] / 1e6 for m in models],
            "gflops": [float(inp.complexity[m]["gflops_fvcore"]) for m in models],
            "mdice": [summary.mdice_cell(inp, m).value for m in models],
            "ours": [m == inp.reference for m in models],
        }
    )


def ours_labels(inp: Inputs) -> set[str]:
    """Labels of the models drawn in Ours' colour: family "Ours", as in the bubble chart."""
    return {inp.names[m] for m in inp.models if inp.families[m] == "Ours"}


def curves(inp: Inputs) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """dataset label -> model label -> (epochs, validation Dice % averaged over the seeds with a log)."""
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for d in inp.datasets:
        for m in inp.ordered(inp.models):
            logs = [inp.runs[(d, m, s)].log for s in inp.seeds if inp.runs[(d, m, s)].log is not None]
            if not logs:
                continue
            frame = pd.concat(
                [pd.DataFrame({"epoch": log["epoch"].to_numpy(), "v": val_dice_percent(log)}) for log in logs]
            )
            mean = frame.groupby("epoch", sort=True)["v"].mean().dropna()
            if len(mean):
                out.setdefault(inp.dataset_names[d], {})[inp.names[m]] = (mean.index.to_numpy(), mean.to_numpy())
    return out


def dvc_metrics(inp: Inputs) -> dict:
    """The compact metrics file for `dvc metrics show`: dataset -> model -> metric mean (seeds averaged)."""
    out: dict = {}
    for d in inp.datasets:
        for m in inp.models:
            entry = {}
            for k in (*PAPER_METRICS, "hd95"):
                cell = summary.metric_cell(inp, d, m, k)
                entry[k] = None if cell.missing else round(cell.value, 4)
            out.setdefault(d, {})[m] = entry
    return out


def build_reports(inp: Inputs) -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {}
    files["comparison.md"], files["comparison.tex"] = comparison.build(inp)
    files["ablation.md"], files["ablation.tex"] = ablation.build(inp)
    files["complexity.md"], files["complexity.tex"] = complexity.build(inp)
    files["initialisation.md"], files["initialisation.tex"] = initialisation.build(inp)
    files["paper_vs_ours.md"] = paper_vs_ours.build(inp)
    files["significance.md"] = significance.build(inp)
    files["claims.md"] = claims.build(inp)
    files["transfer.md"], files["transfer.tex"] = transfer.build(inp)
    files["bubble.png"], files["bubble.pdf"] = figures.both_formats(figures.bubble_chart(bubble_rows(inp), inp.palette))
    main = inp.main_models()
    qual_dataset = inp.dataset_names.get(inp.qualitative_dataset, inp.qualitative_dataset)
    grid = figures.qualitative_grid(inp.samples, main, inp.names, qual_dataset, inp.palette)
    files["qualitative.png"], files["qualitative.pdf"] = figures.both_formats(grid)
    files["val_curves.png"], files["val_curves.pdf"] = figures.both_formats(
        figures.val_curves(curves(inp), inp.names[inp.reference], inp.palette, ours_labels(inp))
    )
    return {k: (v if isinstance(v, bytes) or v.endswith("\n") else v + "\n") for k, v in files.items()}


def metrics_json(inp: Inputs) -> str:
    return json.dumps(dvc_metrics(inp), indent=2, sort_keys=True) + "\n"
