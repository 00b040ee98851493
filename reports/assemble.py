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
    captions,
    claims,
    comparison,
    complexity,
    figures,
    initialisation,
    paper_vs_ours,
    ranking_figures,
    ranking_report,
    reproduction,
    significance,
    summary,
    transfer,
)
from reports.flags import val_dice_percent
from reports.inputs import Inputs


def bubble_rows(inp: Inputs, gflops: list[float]) -> pd.DataFrame:
    """The bubble plot's rows (:func:`reports.figures.bubble_chart`): one per main model, with its row flags."""
    models = inp.main_models()
    return pd.DataFrame(
        {
            "label": [inp.names[m] for m in models],
            "family": [inp.families[m] for m in models],
            "params_m": [inp.complexity[m]["params"] / 1e6 for m in models],
            "gflops": gflops,
            "mdice": [summary.mdice_cell(inp, m).value for m in models],
            "ours": [m == inp.reference for m in models],
            "flags": [summary.make_row(inp, m, inp.datasets).flags for m in models],
        }
    )


def ours_labels(inp: Inputs) -> set[str]:
    """Labels of the models drawn in Ours' colour: family "Ours", as in the bubble chart."""
    return {inp.names[m] for m in inp.models if inp.families[m] == "Ours"}


def _column(log: pd.DataFrame, validated: bool) -> np.ndarray:
    if validated:
        return val_dice_percent(log)
    if "train_loss" not in log.columns:
        return np.full(len(log), np.nan)
    return pd.to_numeric(log["train_loss"], errors="coerce").to_numpy(dtype=float)


def curves(inp: Inputs) -> tuple[dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], set[str]]:
    """(dataset label -> model label -> (epochs, values averaged over the seeds with a log), the dataset labels
    whose values are the training loss). A dataset's values are the validation Dice (%) unless ``val_dice`` is
    empty in every log of the dataset (no validation split): then the training loss. Datasets without any log
    are left out."""
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    losses: set[str] = set()
    for d in inp.datasets:
        logs = {m: [inp.runs[(d, m, s)].log for s in inp.seeds] for m in inp.ordered(inp.models)}
        logs = {m: [log for log in found if log is not None] for m, found in logs.items()}
        if not any(logs.values()):
            continue
        name = inp.dataset_names[d]
        validated = any(np.isfinite(val_dice_percent(log)).any() for found in logs.values() for log in found)
        if not validated:
            losses.add(name)
        out[name] = {}
        for m, found in logs.items():
            if not found:
                continue
            frame = pd.concat(
                [pd.DataFrame({"epoch": log["epoch"].to_numpy(), "v": _column(log, validated)}) for log in found]
            )
            mean = frame.groupby("epoch", sort=True)["v"].mean().dropna()
            if len(mean):
                out[name][inp.names[m]] = (mean.index.to_numpy(), mean.to_numpy())
    return out, losses


def figure_files(inp: Inputs, ranking: ranking_report.Ranking | None = None) -> dict[str, str | bytes]:
    """bubble, qualitative, val_curves and the ranking figures (:mod:`reports.ranking_figures`, from ``ranking``)
    as PNG and PDF, each with its caption, and figures.md embedding them."""
    main = inp.main_models()
    gflops = captions.bubble_gflops(inp, main)
    rows = bubble_rows(inp, gflops.values)
    text = {
        "bubble": captions.bubble_caption(inp, gflops, list(rows["flags"])),
        "qualitative": captions.qualitative_caption(inp),
    }
    figs = {
        "bubble": figures.bubble_chart(rows, inp.palette, gflops_label=gflops.axis, caption=text["bubble"]),
    }
    qual_dataset = inp.dataset_names.get(inp.qualitative_dataset, inp.qualitative_dataset)
    figs["qualitative"] = figures.qualitative_grid(
        inp.samples, main, inp.names, qual_dataset, inp.palette, caption=text["qualitative"]
    )
    lines, losses = curves(inp)
    text["val_curves"] = captions.curves_caption(inp, losses)
    figs["val_curves"] = figures.val_curves(
        lines, inp.names[inp.reference], inp.palette, ours_labels(inp), losses=losses, caption=text["val_curves"]
    )
    if ranking is not None:
        ranked = captions.ranking_captions(inp, ranking)
        text.update(ranked)
        figs.update(ranking_figures.ranking_figures(ranking, inp.reference, inp.palette, ranked))
    files: dict[str, str | bytes] = {}
    for stem, fig in figs.items():
        files[f"{stem}.png"], files[f"{stem}.pdf"] = figures.both_formats(fig)
    files["figures.md"] = captions.markdown(inp, text)
    return files


def dvc_metrics(inp: Inputs, ranking: ranking_report.Ranking | None = None) -> dict:
    """The compact metrics file for `dvc metrics show`: dataset -> model -> metric mean (seeds averaged), and under
    ``rank_stability`` the rank stability per dataset (:func:`reports.ranking_report.metrics`)."""
    out: dict = {}
    for d in inp.datasets:
        for m in inp.models:
            entry = {}
            for k in (*PAPER_METRICS, "hd95"):
                cell = summary.metric_cell(inp, d, m, k)
                entry[k] = None if cell.missing else round(cell.value, 4)
            out.setdefault(d, {})[m] = entry
    stability = ranking_report.metrics(inp, ranking)
    if stability:
        out["rank_stability"] = stability
    return out


def build_reports(inp: Inputs, ranking: ranking_report.Ranking | None = None) -> dict[str, str | bytes]:
    """Every output file by name (``ranking``: :func:`reports.ranking_report.rank_models` of ``inp``, computed
    here when not given)."""
    ranking = ranking_report.rank_models(inp) if ranking is None else ranking
    files: dict[str, str | bytes] = {}
    files["comparison.md"], files["comparison.tex"] = comparison.build(inp)
    files["ablation.md"], files["ablation.tex"] = ablation.build(inp)
    files["complexity.md"], files["complexity.tex"] = complexity.build(inp)
    files["initialisation.md"], files["initialisation.tex"] = initialisation.build(inp)
    files["paper_vs_ours.md"] = paper_vs_ours.build(inp)
    files["significance.md"] = significance.build(inp)
    files["claims.md"] = claims.build(inp, ranking)
    files["transfer.md"], files["transfer.tex"] = transfer.build(inp)
    files["ranking.md"], files["ranking.tex"] = ranking_report.build(inp, ranking)
    files["reproduction.md"] = reproduction.build(inp, ranking)
    files.update(figure_files(inp, ranking))
    return {k: (v if isinstance(v, bytes) or v.endswith("\n") else v + "\n") for k, v in files.items()}


def metrics_json(inp: Inputs, ranking: ranking_report.Ranking | None = None) -> str:
    return json.dumps(dvc_metrics(inp, ranking), indent=2, sort_keys=True) + "\n"
