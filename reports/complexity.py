"""Complexity (paper Table 7): mDice, parameters, GFLOPs and latency measured here, beside the paper's values.

Latency comes from ``results/complexity/<key>.json``: ``<device>_latency_ms`` is the median over the
warm repeats; its spread is read from the first of these that is present: ``<device>_latency_p10_ms`` +
``_p90_ms`` (printed as a range), ``_p25_ms`` + ``_p75_ms``, ``_min_ms`` + ``_max_ms``,
``<device>_latency_iqr_ms`` (a [p25, p75] pair, or a width printed as ± half of it),
``<device>_latency_std_ms`` or ``_spread_ms`` (±); the repeat count from ``<device>_latency_repeats``,
``latency_repeats`` or ``repeats``. Without a spread the median is shown alone and the notes
say so.
"""

from __future__ import annotations

from reports import flags, latex, paper, provenance, summary
from reports.inputs import Inputs
from reports.table import DAGGER_NOTE, Cell, Column, Table, mark_best, to_markdown

THOP_NOTE = (
    "Parameters and GFLOPs are measured here with `sum(p.numel())` and fvcore's FlopCountAnalysis at the "
    "complexity stage's input size (multiply-accumulates; 1x3x224x224 in the paper and the paper profile). "
    "The paper's Table 7 used `thop`, which counts differently (it skips parameters held directly by custom "
    "modules, counts modules registered under two names twice, counts a k2/s2 transposed convolution per "
    "output pixel and ignores functional convolutions and attention matmuls), so the two disagree for "
    "several models; the Table 7 columns are the paper's values."
)


def _num(row: dict, key: str) -> float | None:
    value = row.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def latency(row: dict, device: str) -> tuple[Cell, str]:
    """(cell, what it shows) of one device's latency; an empty cell when not measured. For an interval
    (``kind="ci"``) ``what`` names it without saying how it is typeset (:func:`interval_note` adds that)."""
    p = f"{device}_latency"
    median = _num(row, f"{p}_ms")
    if median is None:
        return Cell(), ""
    repeats = row.get(f"{p}_repeats", row.get("latency_repeats", row.get("repeats")))
    n = f" of {repeats} warm runs" if repeats else ""
    for low, high, what in (("p10", "p90", "10th–90th percentile"), ("p25", "p75", "IQR"), ("min", "max", "range")):
        lo, hi = _num(row, f"{p}_{low}_ms"), _num(row, f"{p}_{high}_ms")
        if lo is not None and hi is not None:
            return Cell(median, lo, hi, "ci"), f"median{n}, with the {what}"
    iqr = row.get(f"{p}_iqr_ms")
    if isinstance(iqr, list | tuple) and len(iqr) == 2:
        return Cell(median, float(iqr[0]), float(iqr[1]), "ci"), f"median{n}, with the IQR"
    if _num(row, f"{p}_iqr_ms") is not None:
        half = _num(row, f"{p}_iqr_ms") / 2
        return Cell(median, median - half, median + half, "std"), f"median{n} ± half the IQR"
    for key in (f"{p}_std_ms", f"{p}_spread_ms"):
        if _num(row, key) is not None:
            s = _num(row, key)
            return Cell(median, median - s, median + s, "std"), f"median{n} ± {key.removeprefix(p + '_')}"
    return Cell(median), f"median{n}, spread not recorded"


def interval_note(what: str, kind: str, latex_form: bool) -> str:
    """``what`` with where its interval is printed: in brackets in Markdown, as offsets in LaTeX."""
    if kind != "ci":
        return what
    return what + (" as super-/subscript offsets from the median" if latex_form else " in brackets")


def mdice_note(inp: Inputs, latex_form: bool) -> str:
    names = ", ".join(inp.dataset_names[d] for d in inp.datasets)
    what = (
        f"mDice: mean test Dice over {names} (each dataset's mean over its test images, then their mean)"
        if len(inp.datasets) > 1
        else f"mDice: mean test Dice on {names} (mean over its test images)"
    )
    if len(inp.seeds) > 1:
        return f"{what}, ± standard deviation over {len(inp.seeds)} seeds"
    where = "as super-/subscript offsets" if latex_form else "in brackets"
    return f"{what}, with its 95% bootstrap confidence interval {where}"


def input_size_text(inp: Inputs, models: list[str]) -> str:
    """The side of the input the complexity stage measured ``models`` at (``224 / 256`` when they differ)."""
    size = {inp.complexity[m].get("input_size") for m in models} - {None}
    return " / ".join(str(s) for s in sorted(size)) or "224"


def same_datasets_as_table7(inp: Inputs) -> bool:
    """Whether this run's mDice averages the datasets the paper's Table 7 mDice averages."""
    return sorted(inp.dataset_names[d] for d in inp.datasets) == sorted(paper.table7_datasets())


def build(inp: Inputs) -> tuple[str, str]:
    """(complexity.md, complexity.tex).

    The paper's Table 7 mDice averages its seven datasets; it is printed beside ours only when this run
    averages the same seven, else left out with a note saying why."""
    prov = inp.provenance
    models = inp.main_models()
    measured = "Measured here"
    names = ", ".join(inp.dataset_names[d] for d in inp.datasets)
    comparable = same_datasets_as_table7(inp)
    over = f"{len(inp.datasets)} datasets" if len(inp.datasets) > 3 else names
    columns = [
        Column("mdice", f"mDice over {over} (%)", measured, True),
        Column("params", "#Param (M)", measured, False),
        Column("gflops", "GFLOPs (fvcore)", measured, False),
    ]
    latency_cells, latency_notes = {}, {}
    for device in ("cpu", "gpu"):
        found = {m: latency(inp.complexity[m], device) for m in models}
        if any(not c.missing for c, _ in found.values()):
            label = "CPU" if device == "cpu" else "GPU"
            columns.append(Column(f"{device}_latency", f"{label} latency (ms)", measured, False, decimals=1))
            latency_cells[device] = {m: c for m, (c, _) in found.items()}
            latency_notes[device] = sorted({(w, c.kind) for c, w in found.values() if w})
    paper_cols = [("params_M", "#Param (M)"), ("GFLOPs", "GFLOPs (thop)")]
    if comparable:
        paper_cols.append(("mDice_percent", "mDice (%)"))
    columns += [Column(k, label, "Paper Table 7", ranked=False) for k, label in paper_cols]
    cells = []
    for m in models:
        c = inp.complexity[m]
        line = [summary.mdice_cell(inp, m), Cell(c["params"] / 1e6), Cell(float(c["gflops_fvcore"]))]
        line += [latency_cells[d][m] for d in latency_cells]
        line += [
            Cell(
                v if (v := paper.paper_value("complexity", model=inp.names[m], column=k)) is not None else float("nan")
            )
            for k, _ in paper_cols
        ]
        cells.append(line)
    rows = [summary.make_row(inp, m, inp.datasets) for m in models]
    table = mark_best(Table(rows, columns, cells))
    size_text = input_size_text(inp, models)
    gpu_names = sorted({str(inp.complexity[m].get("gpu")) for m in models if inp.complexity[m].get("gpu")})
    threads = sorted({inp.complexity[m].get("cpu_threads") for m in models} - {None})
    where = f"CPU threads: {', '.join(map(str, threads)) or 'not recorded'}" + (
        f"; GPU: {', '.join(gpu_names)}" if gpu_names else ""
    )
    table7 = ", ".join(paper.table7_datasets())
    if comparable:
        mdice_paper = f"The paper's Table 7 mDice averages the same datasets ({table7})."
    else:
        mdice_paper = (
            f"The paper's Table 7 mDice averages its seven datasets ({table7}); this run's averages {names} only, "
            "so the paper's mDice is not set beside it (its values are in reports/paper/complexity.csv)."
        )

    def notes(latex_form: bool) -> list[str]:
        lat = "; ".join(
            f"{d.upper()} latency: {', '.join(interval_note(w, k, latex_form) for w, k in latency_notes[d])}"
            for d in latency_cells
            if latency_notes[d]
        )
        return [f"{mdice_note(inp, latex_form)}. {mdice_paper}", f"{lat}. {where}." if lat else f"{where}."]

    setting = summary.setting_text(inp, models)
    table.caption = (
        rf"Complexity (layout of the paper's Table 7): mean test Dice over {latex.escape(names)}, parameters, "
        rf"fvcore GFLOPs and latency of one 3$\times${size_text}$\times${size_text} image measured here, beside "
        r"the paper's Table 7 parameters and thop GFLOPs (-- where the paper has no value)"
        + (" and mDice" if comparable else "; the paper's mDice, over other datasets, is left out")
        + rf". Best measured value in bold red, second underlined blue. {latex.escape(setting)}"
    )
    table.label = "tab:complexity"
    table.notes = notes(False)
    table.tex_notes = notes(True)
    if any(r.flags for r in rows):
        table.tex_notes.append(flags.SHORT_RULES)
        table.notes += [flags.describe_rules(), *summary.flag_notes(inp, models, inp.datasets)]
    md = [
        "# Complexity (paper Table 7, measured here)",
        "",
        f"Generated by `dvc repro` (stages `complexity` and `report`). Parameters and fvcore GFLOPs of each model "
        f"at 1x3x{size_text}x{size_text} (its fixed size where it has one); latency of one image in eval mode on "
        f"the machine that ran the complexity stage; mDice: mean test Dice over the datasets of this run ({names}). "
        "The `Paper Table 7` columns are the paper's values (– where the paper has no value)"
        + ("" if comparable else "; the paper's mDice averages other datasets and is left out")
        + ". Best measured value per column in **bold**, second in *italics* (higher mDice, lower everything "
        f"else). {DAGGER_NOTE}",
        "",
        setting,
        "",
        to_markdown(table),
        "",
        *table.notes,
        "",
        THOP_NOTE,
        "",
        provenance.markdown_block(prov),
    ]
    tex = latex.header_comment("Complexity (paper Table 7)", provenance.lines(prov)) + "\n" + latex.table_float(table)
    return "\n".join(md), tex + "\n"
