"""Complexity (paper Table 7): mDice, parameters, GFLOPs and latency measured here, beside the paper's values.

Latency comes from ``results/complexity/<key>.json``: ``<device>_latency_ms`` is the median over the
warm repeats; its spread is read from the first of these that is present: ``<device>_latency_p10_ms`` +
``_p90_ms`` (printed as a range), ``_p25_ms`` + ``_p75_ms``, ``_min_ms`` + ``_max_ms``,
``<device>_latency_iqr_ms`` (a [p25, p75] pair, or a width printed as ± half of it),
``<device>_latency_std_ms`` or ``_spread_ms`` (±); the repeat count from ``<device>_latency_repeats``,
``latency_repeats`` or ``repeats``. Without a spread the median is shown alone and the notes
say so.

Machines: a latency depends on the machine that measured it, which ``machine`` of the JSON records (CPU
model, GPU name, torch version, threads, dtype). A latency column never mixes machines: each machine that
measured any model gets its own column(s), headed "machine A", "machine B", ... and described under the table;
a model measured elsewhere is "–" there, and best/second are marked within a column only. Results written
before the stage recorded its machine (no ``machine`` key) go to a column of their own, "machine not
recorded", whose values are not ranked (they may come from several machines).
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field

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


NOT_RECORDED = "machine not recorded"
DEVICE_LABELS = {"cpu": "CPU", "gpu": "GPU"}


def machine_of(row: dict) -> str | None:
    """A complexity result's machine as canonical JSON (equal text: same machine); None when not recorded."""
    machine = row.get("machine")
    return json.dumps(machine, sort_keys=True) if isinstance(machine, dict) and machine else None


def machine_text(key: str | None) -> str:
    """A machine in words: ``AMD EPYC, 2 threads, GPU none, torch 2.4.1, float32``."""
    if key is None:
        return NOT_RECORDED
    m = json.loads(key)
    return ", ".join(
        [
            str(m.get("cpu") or "CPU not recorded"),
            f"{m['threads']} threads" if m.get("threads") is not None else "threads not recorded",
            f"GPU {m['gpu']}" if m.get("gpu") else "no GPU",
            f"torch {m['torch']}" if m.get("torch") else "torch version not recorded",
            str(m.get("dtype") or "dtype not recorded"),
        ]
    )


@dataclass
class LatencyColumn:
    """One latency column: one device on one machine (``machine`` None: not recorded)."""

    device: str  # "cpu" or "gpu"
    machine: str | None  # machine_of() of its results
    tag: str  # "A", "B", ... or NOT_RECORDED
    cells: dict[str, Cell] = field(default_factory=dict)  # model -> latency (empty Cell: measured elsewhere)
    what: list[tuple[str, str]] = field(default_factory=list)  # (what the cells show, interval kind)

    @property
    def label(self) -> str:
        where = self.tag if self.machine is None else f"machine {self.tag}"
        return f"{DEVICE_LABELS[self.device]} latency (ms), {where}"


def latency_columns(inp: Inputs, models: list[str]) -> list[LatencyColumn]:
    """The latency columns of ``models``: per device, one per machine that measured it (module docstring).

    Machines are lettered over both devices in order of the number of models they measured (then of the first
    model measured); the not-recorded column comes last."""
    found = {d: {m: latency(inp.complexity[m], d) for m in models} for d in DEVICE_LABELS}
    machine = {m: machine_of(inp.complexity[m]) for m in models}
    measured = [k for d in DEVICE_LABELS for m in models if not found[d][m][0].missing for k in [machine[m]]]
    recorded = sorted({k for k in measured if k is not None}, key=lambda k: (-measured.count(k), measured.index(k)))
    tags = {k: string.ascii_uppercase[i % 26] * (1 + i // 26) for i, k in enumerate(recorded)}
    tags[None] = NOT_RECORDED
    columns = []
    for device in DEVICE_LABELS:
        for key in [*recorded, None]:
            here = [m for m in models if machine[m] == key and not found[device][m][0].missing]
            if not here:
                continue
            column = LatencyColumn(device, key, tags[key])
            column.cells = {m: found[device][m][0] if m in here else Cell() for m in models}
            column.what = sorted({(found[device][m][1], found[device][m][0].kind) for m in here})
            columns.append(column)
    return columns


def machine_notes(columns: list[LatencyColumn]) -> list[str]:
    """What each machine of the latency columns is, and why columns differ by machine."""
    keys = list(dict.fromkeys(c.machine for c in columns))
    named = [f"machine {c.tag}: {machine_text(c.machine)}" for c in columns if c.machine is not None]
    notes = ["Latency measured on " + "; ".join(dict.fromkeys(named)) + "." if named else ""]
    if len(keys) > 1:
        notes.append(
            f"The latencies come from {len(keys)} machines (or sets of machines): each latency column holds one "
            "machine's measurements, best and second are marked within a column, and values of different columns "
            "are not comparable; a model measured elsewhere is – in a column."
        )
    if None in keys:
        notes.append(
            "Machine not recorded: complexity results written before the complexity stage recorded its machine "
            "(no `machine` key); they may come from several machines, so that column is not ranked. Rerun the "
            "complexity stages (`dvc repro -f complexity@<model>`) on one machine to attribute them."
        )
    return [n for n in notes if n]


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
    where = "as super-/subscript offsets" if latex_form else "in brackets"
    if len(inp.seeds) > 1:
        return (
            f"{what}, mean over {len(inp.seeds)} seeds ± standard deviation between the seeds' mDice, with the 95% "
            f"two-level bootstrap interval (seeds resampled, then each dataset's images) {where}"
        )
    return f"{what}, with its 95% bootstrap confidence interval {where}"


def input_size_text(inp: Inputs, models: list[str]) -> str:
    """The side of the input the complexity stage measured ``models`` at (``224 / 256`` when they differ)."""
    size = {inp.complexity[m].get("input_size") for m in models} - {None}
    return " / ".join(str(s) for s in sorted(size)) or "224"


def same_datasets_as_table7(inp: Inputs) -> bool:
    """Whether this run's mDice averages the datasets the paper's Table 7 mDice averages."""
    return sorted(inp.dataset_names[d] for d in inp.datasets) == sorted(paper.table7_datasets())


def paper_mdice_note(comparable: bool, names: str) -> str:
    """Whether the paper's Table 7 mDice averages the datasets of this run (``names``), and what follows."""
    table7 = ", ".join(paper.table7_datasets())
    if comparable:
        return f"The paper's Table 7 mDice averages the same datasets ({table7})."
    return (
        f"The paper's Table 7 mDice averages its seven datasets ({table7}); this run's averages {names} only, "
        "so the paper's mDice is not set beside it (its values are in reports/paper/complexity.csv)."
    )


def intro_text(size_text: str, names: str, comparable: bool) -> str:
    """The paragraph above the Markdown table: what each column measures."""
    return (
        f"Generated by `dvc repro` (stages `complexity` and `report`). Parameters and fvcore GFLOPs of each model "
        f"at 1x3x{size_text}x{size_text} (its fixed size where it has one); latency of one image in eval mode, one "
        "column per machine that measured it (named under the table); mDice: mean test Dice over the datasets of "
        f"this run ({names}). The `Paper Table 7` columns are the paper's values (– where the paper has no value)"
        + ("" if comparable else "; the paper's mDice averages other datasets and is left out")
        + ". Best measured value per column in **bold**, second in *italics* (higher mDice, lower everything "
        f"else). {DAGGER_NOTE}"
    )


def caption_text(names: str, size_text: str, comparable: bool, setting: str) -> str:
    """The LaTeX caption of the table."""
    return (
        rf"Complexity (layout of the paper's Table 7): mean test Dice over {latex.escape(names)}, parameters, "
        rf"fvcore GFLOPs and latency of one 3$\times${size_text}$\times${size_text} image measured here (one latency "
        r"column per machine), beside the paper's Table 7 parameters and thop GFLOPs (-- where the paper has no value)"
        + (" and mDice" if comparable else "; the paper's mDice, over other datasets, is left out")
        + rf". Best measured value in bold red, second underlined blue. {latex.escape(setting)}"
    )


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
    lat = latency_columns(inp, models)
    for k, c in enumerate(lat):
        ranked = c.machine is not None  # results without a machine may come from several
        columns.append(Column(f"{c.device}_latency_{k}", c.label, measured, False, decimals=1, ranked=ranked))
    paper_cols = [("params_M", "#Param (M)"), ("GFLOPs", "GFLOPs (thop)")]
    if comparable:
        paper_cols.append(("mDice_percent", "mDice (%)"))
    columns += [Column(k, label, "Paper Table 7", ranked=False) for k, label in paper_cols]
    cells = []
    for m in models:
        c = inp.complexity[m]
        line = [summary.mdice_cell(inp, m), Cell(c["params"] / 1e6), Cell(float(c["gflops_fvcore"]))]
        line += [col.cells[m] for col in lat]
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
    where = " ".join(machine_notes(lat))
    mdice_paper = paper_mdice_note(comparable, names)

    def notes(latex_form: bool) -> list[str]:
        shows = {}
        for c in lat:
            shows.setdefault(DEVICE_LABELS[c.device], set()).update(interval_note(w, k, latex_form) for w, k in c.what)
        text = "; ".join(f"{device} latency: {', '.join(sorted(w))}" for device, w in shows.items())
        return [f"{mdice_note(inp, latex_form)}. {mdice_paper}", " ".join(p for p in (text and text + ".", where) if p)]

    setting = summary.setting_text(inp, models)
    table.caption = caption_text(names, size_text, comparable, setting)
    table.label = "tab:complexity"
    table.notes = notes(False)
    table.tex_notes = notes(True)
    if any(r.flags for r in rows):
        table.tex_notes.append(flags.SHORT_RULES)
        table.notes += [flags.describe_rules(), *summary.flag_notes(inp, models, inp.datasets)]
    md = [
        "# Complexity (paper Table 7, measured here)",
        "",
        intro_text(size_text, names, comparable),
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
