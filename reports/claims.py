"""``claims.md``: the abstract's two claims tested on every run, beyond the paper's tables.

The abstract says DyGLNet excels "in boundary accuracy and small-object segmentation". Per dataset:

- **Lesion size**: the test images are put into three bins by the ground truth's foreground fraction
  (% of the image, from ``data/prepared/<D>/masks.npy``), with the tertiles of that fraction over the
  test images with a non-empty mask as edges: small <= q1/3 < medium <= q2/3 < large. The edges are fixed
  by the ground truth alone, so every model is scored on the same images. Images without foreground are
  left out (counted). Cell: mean Dice of the bin's images with its 95% bootstrap CI (seeds averaged
  per image).
- **Boundary**: HD95 (px, lower is better) and normalised surface Dice at a tolerance of
  ``SURFACE_TOLERANCE_PX`` pixels at the evaluation resolution (NSD, %, higher is better), per model.

Verdict per column: "supported" when the reference model is best and separable from the second
(intervals do not overlap); "best, not separable" when it is best but overlaps the second; otherwise
"not supported" with the reference's rank. Degenerate runs are not ranked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.metric_names import SURFACE_TOLERANCE_PX
from reports import flags, provenance, summary
from reports.comparison import uncertainty_text
from reports.inputs import Inputs
from reports.table import DAGGER_NOTE, Cell, Column, Table, fmt, mark_best, to_markdown

BINS = ("small", "medium", "large")


def size_bins(truth_fg: pd.Series) -> tuple[pd.Series, tuple[float, float], int]:
    """(image id -> bin name for non-empty masks, (q1, q2) edges in %, number of empty masks)."""
    nonempty = truth_fg[truth_fg > 0]
    if nonempty.empty:
        return pd.Series(dtype=object), (float("nan"), float("nan")), len(truth_fg)
    q1, q2 = np.quantile(nonempty.to_numpy(), [1 / 3, 2 / 3])
    names = np.where(nonempty <= q1, "small", np.where(nonempty <= q2, "medium", "large"))
    return pd.Series(names, index=nonempty.index), (float(q1), float(q2)), int((truth_fg <= 0).sum())


def verdict(table: Table, j: int, reference: str) -> str:
    col = table.columns[j]
    ranked = [(row, cells[j]) for row, cells in zip(table.rows, table.cells, strict=True)]
    ref = next(c for row, c in ranked if row.key == reference)
    if ref.missing:
        return f"{col.label}: not measured"
    if ref.rank == 1:
        return f"{col.label}: " + ("best, not separable from the second" if ref.not_separable else "supported")
    better = sum(
        1
        for _, c in ranked
        if c.rankable and not c.missing and (c.value > ref.value if col.higher_is_better else c.value < ref.value)
    )
    best = next((row.label for row, c in ranked if c.rank == 1), "-")
    return f"{col.label}: not supported (rank {better + 1}; best: {best})"


def _table(inp: Inputs, d: str, models: list[str], columns: list[Column], cell_of) -> Table:
    rows = [summary.make_row(inp, m, [d]) for m in models]
    cells = []
    for m in models:
        degenerate = summary.is_degenerate(inp, d, m)
        line = [cell_of(m, c) for c in columns]
        for c in line:
            c.rankable = not degenerate
        cells.append(line)
    return mark_best(Table(rows, columns, cells))


def build(inp: Inputs) -> str:
    ref = inp.names[inp.reference]
    models = inp.ordered(inp.models)
    lines = [
        "# The abstract's claims, tested on this run",
        "",
        f'The abstract claims that {ref} excels "in boundary accuracy and small-object segmentation". '
        "These tables test both claims on every model of this run; they are not tables of the paper.",
        "",
        "- Lesion-size bins: per dataset, tertiles of the ground truth's foreground fraction over the test "
        "images with a non-empty mask (fixed by the ground truth, the same for every model); small <= first "
        "tertile < medium <= second tertile < large. Cells: mean Dice (%) of the bin's images, "
        "95% bootstrap CI in brackets" + (", seeds averaged per image." if len(inp.seeds) > 1 else "."),
        f"- Boundary: HD95 (px, lower is better) and normalised surface Dice (NSD, %) at a tolerance of "
        f"{SURFACE_TOLERANCE_PX:g} px at the evaluation resolution; {uncertainty_text(inp)}.",
        f'- Verdict: "supported" when {ref} is best and its interval does not overlap the second\'s. '
        f"Best per column in **bold**, second in *italics*; degenerate runs (D) are not ranked. {DAGGER_NOTE}",
        "",
    ]
    for d in inp.datasets:
        name = inp.dataset_names[d]
        bins, (q1, q2), empty = size_bins(inp.truth_fg[d])
        counts = bins.value_counts()
        columns = [Column(b, f"{b.capitalize()} (n={int(counts.get(b, 0))})", decimals=2) for b in BINS]
        dice = {m: summary.per_image(inp, d, m, "dice") for m in models}

        def size_cell(m, col, dice=dice, bins=bins):
            ids = bins.index[bins == col.key]
            return summary.values_cell(dice[m].reindex(ids).dropna().to_numpy())

        size = _table(inp, d, models, columns, size_cell)
        lines += [
            f"## {name}",
            "",
            f"### Dice by lesion size (small <= {fmt(q1)}% < medium <= {fmt(q2)}% < large, of the image area)",
            "",
            to_markdown(size),
            "",
        ]
        if empty:
            lines += [f"{empty} test images without foreground are in no bin.", ""]
        lines += ["Verdict (small-object claim): " + verdict(size, 0, inp.reference) + ".", ""]
        boundary_cols = [
            Column("dice", "Dice (%)"),
            Column("hd95", "HD95 (px)", higher_is_better=False),
            Column("surface_dice", f"NSD@{SURFACE_TOLERANCE_PX:g}px (%)"),
        ]
        have_nsd = all("surface_dice" in inp.runs[(d, m, s)].per_image.columns for m in models for s in inp.seeds)

        def boundary_cell(m, col, d=d, have_nsd=have_nsd):
            return summary.metric_cell(inp, d, m, col.key) if col.key != "surface_dice" or have_nsd else Cell()

        boundary = _table(inp, d, models, boundary_cols, boundary_cell)
        lines += ["### Boundary accuracy", "", to_markdown(boundary), ""]
        if not have_nsd:
            lines += ["NSD not recorded: per_image.csv has no surface_dice column (evaluated before it existed).", ""]
        lines += [
            "Verdict (boundary claim): "
            + "; ".join(verdict(boundary, j, inp.reference) for j in (1, 2) if have_nsd or j == 1)
            + ".",
            "",
        ]
        notes = summary.flag_notes(inp, models, [d])
        if any(r.flags for r in size.rows):
            notes.insert(0, flags.describe_rules())
        lines += [*notes, ""] if notes else []
    lines.append(provenance.markdown_block(inp.provenance))
    return "\n".join(lines)
