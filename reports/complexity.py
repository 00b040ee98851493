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
from reports.comparison import uncertainty_text
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
    """(cell, what its interval is) of one device's latency; an empty cell when not measured."""
    p = f"{device}_latency"
    median = _num(row, f"{p}_ms")
    if median is None:
        return Cell(), ""
    repeats = row.get(f"{p}_repeats", row.get("latency_repeats", row.get("repeats")))
    n = f" of {repeats} warm runs" if repeats else ""
    for low, high, what in (("p10", "p90", "10th–90th percentile"), ("p25", "p75", "IQR"), ("min", "max", "range")):
        lo, hi = _num(row, f"{p}_{low}_ms"), _num(row, f"{p}_{high}_ms")
        if lo is not None and hi is not None:
            return Cell(median, lo, hi, "ci"), f"median{n} ({what} in brackets)"
    iqr = row.get(f"{p}_iqr_ms")
    if isinstance(iqr, list | tuple) and len(iqr) == 2:
        return Cell(median, float(iqr[0]), float(iqr[1]), "ci"), f"median{n} (IQR in brackets)"
    if _num(row, f"{p}_iqr_ms") is not None:
        half = _num(row, f"{p}_iqr_ms") / 2
        return Cell(median, median - half, median + half, "std"), f"median{n} ± half the IQR"
    for key in (f"{p}_std_ms", f"{p}_spread_ms"):
        if _num(row, key) is not None:
            s = _num(row, key)
            return Cell(median, median - s, median + s, "std"), f"median{n} ± {key.removeprefix(p + '_')}"
    return Cell(median), f"median{n}, spread not recorded"


def build(inp: Inputs) -> tuple[str, str]:
    """(complexity.md, complexity.tex)."""
    prov = inp.provenance
    models = inp.main_models()
    measured = "Measured here"
    columns = [
        Column("mdice", "mDice (%)", measured, True),
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
            latency_notes[device] = sorted({w for _, w in found.values() if w})
    paper_cols = [("params_M", "#Param (M)"), ("GFLOPs", "GFLOPs (thop)"), ("mDice_percent", "mDice (%)")]
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
    size = {inp.complexity[m].get("input_size") for m in models} - {None}
    size_text = " / ".join(str(s) for s in sorted(size)) or "224"
    gpu_names = sorted({str(inp.complexity[m].get("gpu")) for m in models if inp.complexity[m].get("gpu")})
    threads = sorted({inp.complexity[m].get("cpu_threads") for m in models} - {None})
    lat_text = "; ".join(
        f"{d.upper()} latency: {', '.join(latency_notes[d])}" for d in latency_cells if latency_notes[d]
    )
    where = f"CPU threads: {', '.join(map(str, threads)) or 'not recorded'}" + (
        f"; GPU: {', '.join(gpu_names)}" if gpu_names else ""
    )
    table.caption = (
        r"Complexity (layout of the paper's Table 7): mean test Dice over this run's datasets, parameters, "
        rf"fvcore GFLOPs and latency of one 3$\times${size_text}$\times${size_text} image measured here, beside "
        r"the paper's Table 7 values (thop GFLOPs; -- where the paper has no value). Best measured value in bold "
        r"red, second underlined blue."
    )
    table.label = "tab:complexity"
    table.notes = [f"mDice: {uncertainty_text(inp)}. {lat_text}. {where}."]
    if any(r.flags for r in rows):
        table.tex_notes = [*table.notes, flags.SHORT_RULES]
        table.notes += [flags.describe_rules(), *summary.flag_notes(inp, models, inp.datasets)]
    md = [
        "# Complexity (paper Table 7, measured here)",
        "",
        f"Generated by `dvc repro` (stages `complexity` and `report`). Parameters and fvcore GFLOPs of each model "
        f"at 1x3x{size_text}x{size_text} (its fixed size where it has one); latency of one image in eval mode on "
        "the machine that ran the complexity stage; mDice: mean test Dice over the datasets of this run "
        f"({', '.join(inp.dataset_names[d] for d in inp.datasets)}). The `Paper Table 7` columns are the "
        "paper's values (– where the paper has no value). Best measured value per column in **bold**, second "
        f"in *italics* (higher mDice, lower everything else). {DAGGER_NOTE}",
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
