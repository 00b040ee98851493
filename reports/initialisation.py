"""From scratch against pretrained (beyond the paper): ``initialisation.md``, ``initialisation.tex``.

A pair is two ``models:`` entries of params.yaml that differ only in their initialisation: one asks for
pretrained weights (``model_kwargs.pretrained: true`` or a ``pretrained_file``), the other for none, with the same
builder, the same other ``model_kwargs`` and the same recipe, e.g. ``swinunet: {}`` and ``swinunet_in1k: {model:
swinunet, model_kwargs: {pretrained: true}}`` (configs/paper-pretrained.yaml). A pretrained entry pairs with the
first such scratch entry in params.yaml's order; ablation variants are left out. Without a pair both files say
so in one line.

Per pair and dataset: the mean test Dice from scratch and pretrained with the interval of the other tables
(:mod:`reports.summary`), and Δ = pretrained − scratch: with one seed the mean per-image difference (images
paired) with its 95% bootstrap confidence interval; with several seeds the mean of each seed's difference, the
standard deviation between the seeds' differences and the 95% two-level bootstrap interval (seeds, then the paired
images resampled).

Then one sentence on the reference model (DyGLNet): its rank by mean test Dice, per dataset and by mDice over
the datasets, among the main models with every paired baseline from scratch, against the ranking with each
paired baseline pretrained in its place (where one scratch entry has several pretrained partners, its first).
Ranks compare the means at the printed precision (equal printed values share a rank); intervals are not
considered.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from models.pretrained import requests_weights
from reports import latex, provenance, summary
from reports.comparison import uncertainty_text
from reports.inputs import Inputs
from reports.table import Cell, Column, Row, Table, markdown_table, to_markdown

TITLE = "From scratch against pretrained (beyond the paper)"
NONE_LINE = (
    "No model runs both from scratch and pretrained in params.yaml `models` (a pair: two entries with the same "
    "builder, arguments and recipe, one with `model_kwargs.pretrained: true` or a `pretrained_file`; see "
    "configs/paper-pretrained.yaml)."
)


COMPARED = ("init",)  # the one recipe difference this table is about


def pairs(inp: Inputs) -> list[tuple[str, str]]:
    """``[(scratch key, pretrained key)]`` in params.yaml order of the pretrained entries (module docstring)."""
    main = [m for m in inp.models if inp.families[m] != "Ablation"]
    scratch = [m for m in main if not requests_weights(inp.weights.get(m))]
    found = []
    for m in main:
        if requests_weights(inp.weights.get(m)):
            partner = next((s for s in scratch if inp.setups.get(s) == inp.setups.get(m)), None)
            if partner is not None:
                found.append((partner, m))
    return found


def delta_cell(inp: Inputs, d: str, scratch: str, pretrained: str) -> Cell:
    """Pretrained − scratch mean test Dice on ``d`` with its interval (module docstring)."""
    a, b = summary.per_image(inp, d, pretrained, "dice"), summary.per_image(inp, d, scratch, "dice")
    both = list(a.index.intersection(b.index))
    pre = summary.seed_matrix(inp, d, pretrained, "dice", both)
    base = summary.seed_matrix(inp, d, scratch, "dice", both)
    return summary.matrix_cell(None if pre is None or base is None else pre - base)


def pair_label(inp: Inputs, scratch: str, pretrained: str) -> str:
    """``SwinUnet / SwinUnet (IN-1k)``; the keys where both entries have the same display name."""
    a, b = inp.names[scratch], inp.names[pretrained]
    return f"{a} / {b}" if a != b else f"{a} ({scratch} / {pretrained})"


def pair_table(inp: Inputs, found: list[tuple[str, str]]) -> Table:
    columns = [
        Column(f"{d}:{k}", label, inp.dataset_names[d], ranked=False)
        for d in inp.datasets
        for k, label in (("scratch", "Scratch"), ("pretrained", "Pretrained"), ("delta", "Δ"))
    ]
    rows, cells = [], []
    for s, p in found:  # the table is about initialisation: a pair is flagged (B) for any other difference
        base = summary.make_row(inp, s, inp.datasets, ignore=COMPARED)
        flags = tuple(dict.fromkeys(base.flags + summary.make_row(inp, p, inp.datasets, ignore=COMPARED).flags))
        rows.append(Row(p, pair_label(inp, s, p), inp.families[s], flags))
        line = []
        for d in inp.datasets:
            line += [summary.metric_cell(inp, d, s, "dice"), summary.metric_cell(inp, d, p, "dice")]
            line.append(delta_cell(inp, d, s, p))
        cells.append(line)
    models = [m for pair in found for m in pair]
    notes = summary.flag_notes(inp, models, inp.datasets, ignore=COMPARED)
    return Table(rows, columns, cells, notes=notes, row_header="Model")


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def rank_of(model: str, models: list[str], value: Callable[[str], float]) -> tuple[int, int] | None:
    """(rank of ``model`` by ``value``, higher first, at two decimals; number of models with a value)."""
    values = {m: round(value(m), 2) for m in models}
    values = {m: v for m, v in values.items() if not np.isnan(v)}
    if model not in values:
        return None
    return 1 + sum(v > values[model] for v in values.values()), len(values)


def rank_sentence(inp: Inputs, found: list[tuple[str, str]]) -> str:
    """Whether the reference model's rank changes when the paired baselines start pretrained (module docstring)."""
    first: dict[str, str] = {}
    for s, p in found:
        first.setdefault(s, p)
    main = inp.main_models()
    all_pretrained = {p for _, p in found}
    scratch_set = [m for m in main if m not in all_pretrained]
    pretrained_set = [first.get(m, m) for m in main if m not in all_pretrained]
    partner_of = {p: s for s, p in found}
    ref = partner_of.get(inp.reference, inp.reference)  # the reference as it runs in the scratch ranking
    ref_pretrained = first.get(ref, ref)
    name = inp.names[ref]
    criteria: list[tuple[str, Callable[[str], float]]] = [
        (inp.dataset_names[d], lambda m, d=d: summary.metric_cell(inp, d, m, "dice").value) for d in inp.datasets
    ]
    mdice = f"mDice over the {len(inp.datasets)} datasets"
    if len(inp.datasets) > 1:
        criteria.append((mdice, lambda m: summary.mdice_cell(inp, m).value))
    parts, changed = [], []
    for label, value in criteria:
        before, after = rank_of(ref, scratch_set, value), rank_of(ref_pretrained, pretrained_set, value)
        if before is None or after is None:
            parts.append(f"{label}: not ranked (no value)")
            continue
        parts.append(f"{label} {ordinal(before[0])} → {ordinal(after[0])} of {after[1]}")
        if before[0] != after[0]:
            changed.append(label)
    swapped = ", ".join(f"{inp.names[p]} for {inp.names[s]}" for s, p in first.items())
    on = [label for label in changed if label != mdice]
    where = ([f"on {', '.join(on)}"] if on else []) + (["by mDice"] if mdice in changed else [])
    if where:
        verdict = f"{name}'s rank changes {' and '.join(where)}."
    else:
        verdict = f"{name}'s rank does not change on any dataset{' or by mDice' if len(inp.datasets) > 1 else ''}."
    return (
        f"Rank of {name} by mean test Dice among the {len(scratch_set)} main models, every paired baseline from "
        f"scratch → with the paired baselines pretrained ({swapped}): {'; '.join(parts)}. {verdict} Ranks compare "
        "the means at two decimals; the intervals above say whether a difference is resolved."
    )


def weight_arguments(arguments: dict) -> str:
    """``pretrained: true`` for ``{"pretrained": True}``: the weight arguments as params.yaml writes them."""
    return ", ".join(f"{k}: {json.dumps(v)}" for k, v in arguments.items())


def build(inp: Inputs) -> tuple[str, str]:
    """(initialisation.md, initialisation.tex)."""
    prov = inp.provenance
    head_tex = latex.header_comment(TITLE, provenance.lines(prov))
    found = pairs(inp)
    if not found:
        return f"# {TITLE}\n\n{NONE_LINE}\n\n" + provenance.markdown_block(prov), head_tex + f"% {NONE_LINE}\n"
    table = pair_table(inp, found)
    models = [m for pair in found for m in pair]
    setting = summary.setting_text(inp, models)
    sentence = rank_sentence(inp, found)
    delta = (
        "mean of each seed's difference ± the standard deviation between seeds, with the 95% two-level bootstrap "
        "interval (seeds, then the paired images)"
        if len(inp.seeds) > 1
        else "mean per-image difference, images paired, with its 95% bootstrap confidence interval"
    )
    table.caption = (
        rf"Test Dice (\%) of the baselines that run both from scratch and pretrained: {uncertainty_text(inp, True)}; "
        rf"$\Delta$ = pretrained $-$ scratch ({latex.escape(delta)}). " + latex.escape(f"{sentence} {setting}")
    )
    table.label = "tab:initialisation"
    entries = [[pair_label(inp, s, p), f"`{s}`", f"`{p}`", f"`{weight_arguments(inp.weights[p])}`"] for s, p in found]
    md = [
        f"# {TITLE}",
        "",
        "Generated by `dvc repro` (stage `report`) from this repository's runs. Test Dice in percent, "
        f"{uncertainty_text(inp)}; Δ = pretrained − scratch ({delta}). The paper states no initialisation; "
        "these pairs measure what pretrained backbones change (docs/how-to/pretrained-weights.md). Provenance, "
        "`initialisation`, names the weights each run started from.",
        "",
        setting,
        "",
        to_markdown(table),
        "",
        *table.notes,
        *([""] if table.notes else []),
        sentence,
        "",
        markdown_table(["Model", "scratch entry", "pretrained entry", "weights asked for"], entries, "llll"),
        "",
        provenance.markdown_block(prov),
    ]
    return "\n".join(md), head_tex + "\n" + latex.table_float(table) + "\n"
