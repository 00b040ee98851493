"""``claims.md``: the abstract's two claims tested on every run, beyond the paper's tables.

The abstract says DyGLNet excels "in boundary accuracy and small-object segmentation". Per dataset:

- **Lesion size**: the test images are put into three bins by the ground truth's foreground fraction
  (% of the image, from ``data/prepared/<D>/masks.npy``), with the tertiles of that fraction over the
  test images with a non-empty mask as edges: small <= q1/3 < medium <= q2/3 < large. The edges are fixed
  by the ground truth alone, so every model is scored on the same images. Images without foreground are
  left out (counted). Cell: mean Dice of the bin's images with its 95% bootstrap CI; with several seeds the
  mean over seeds, the standard deviation between seeds and the two-level interval (seeds, then the bin's images).
- **Boundary**: HD95 (px, lower is better) and normalised surface Dice at a tolerance of
  ``SURFACE_TOLERANCE_PX`` pixels at the evaluation resolution (NSD, %, higher is better), per model.

Verdict per column (:func:`verdict`), from the intervals (95% bootstrap CI over images with one seed; with
several, the 95% two-level interval, seeds then images), the number of images the column holds, the number of
seeds and the unconverged flag (:mod:`reports.flags`):

- **supported**: the reference's interval lies entirely on the better side of every other ranked model's,
  and none of these runs, the reference's included, is flagged unconverged;
- **not supported**: the reference's run is not flagged unconverged, and some model whose run is not
  flagged has its interval entirely on the better side of the reference's;
- **inconclusive**: everything else, with the reasons: the intervals leave the order open, a run the
  verdict would rest on is still rising (U), the reference's run is degenerate, or the column holds
  fewer than ``MIN_IMAGES`` images (with fewer, a percentile-bootstrap interval of a mean is too narrow:
  it covers the true mean less often than 95%), whatever the intervals say.

One seed: a verdict may still read "supported" or "not supported" (on the image-level interval), but its text
adds "one seed: seed variation not measured" (:data:`ONE_SEED`): the interval holds the test images' variation,
not that of training again with another seed.

**Ranks first** (:func:`reports.ranking_report.ranks_first`), per dataset, from the ranking analysis of the main
models (ranking.md): "supported" only if the reference's 95% bootstrap rank interval is [1, 1]
and its run is not flagged (D, U or B); "not supported" if an unflagged other model's interval is [1, 1];
otherwise "inconclusive" with the interval; fewer than ``MIN_IMAGES`` test images: "inconclusive (n < 20: ...)".

Degenerate runs are not ranked; a run whose convergence could not be judged counts as not flagged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.metric_names import SURFACE_TOLERANCE_PX
from reports import flags, provenance, ranking_report, summary
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


MIN_IMAGES = flags.MIN_IMAGES
ONE_SEED = flags.ONE_SEED  # added to a definite verdict on one seed


def _separated(a: Cell, b: Cell, higher_is_better: bool) -> bool:
    """``a``'s interval lies entirely on the better side of ``b``'s."""
    if None in (a.low, a.high, b.low, b.high):
        return False
    return a.low > b.high if higher_is_better else a.high < b.low


def _names(labels: list[str]) -> str:
    return ", ".join(labels)


OUTCOMES = ("supported", "not supported", "inconclusive", "not measured")


def verdict(table: Table, j: int, reference: str, n_images: int, unconverged: set[str], *, n_seeds: int) -> str:
    """``<column>: supported | not supported | inconclusive (...)`` by the rule of the module docstring.

    ``n_images``: images the column holds; ``unconverged``: row keys whose run is flagged (U); ``n_seeds``: seeds
    behind each cell (one: a definite verdict says that seed variation was not measured)."""
    return judge(table, j, reference, n_images, unconverged, n_seeds=n_seeds)[1]


def judge(
    table: Table, j: int, reference: str, n_images: int, unconverged: set[str], *, n_seeds: int
) -> tuple[str, str]:
    """(outcome, text) of :func:`verdict`: the outcome is one of ``OUTCOMES``, the text the verdict's sentence."""
    col = table.columns[j]
    rows = {row.key: (row, cells[j]) for row, cells in zip(table.rows, table.cells, strict=True)}
    ref_row, ref = rows[reference]
    if ref.missing:
        return "not measured", f"{col.label}: not measured"
    hib = col.higher_is_better
    others = [(row, c) for key, (row, c) in rows.items() if key != reference and c.rankable and not c.missing]
    if not others:
        return "inconclusive", f"{col.label}: inconclusive (no other ranked model)"
    rank = 1 + sum(1 for _, c in others if (c.value > ref.value if hib else c.value < ref.value))
    where = f"rank {rank} of {len(others) + 1}"
    ahead = [row for row, c in others if _separated(c, ref, hib)]  # surely better than the reference
    overlapping = [row for row, c in others if not _separated(c, ref, hib) and not _separated(ref, c, hib)]
    reasons = []
    if not ref.rankable:
        why = [w for f, w in (("D", "degenerate"), ("B", "trained with another recipe (B)")) if f in ref_row.flags]
        reasons.append(f"{ref_row.label}'s run is {' and '.join(why) or 'not ranked'}")
    if n_images < MIN_IMAGES:  # the small-sample rule, named first: no interval is trusted on so few images
        where = f"n < {MIN_IMAGES}: {n_images} images; {where}"
    if not ahead and not overlapping:
        candidate, rests_on = "supported", [ref_row] + [row for row, _ in others]
        detail = "interval entirely better than every other model's"
    elif ahead:
        candidate, rests_on = "not supported", [ref_row, *ahead]
        converged_ahead = [row.label for row in ahead if row.key not in unconverged]
        detail = f"interval entirely worse than {_names(converged_ahead or [r.label for r in ahead])}'s"
    else:
        candidate, rests_on = None, [ref_row, *overlapping]
        reasons.append(f"interval overlaps {_names([r.label for r in overlapping])}'s")
    flagged = [row.label for row in rests_on if row.key in unconverged]
    blocked = reference in unconverged or (
        not [r for r in ahead if r.key not in unconverged] if candidate == "not supported" else bool(flagged)
    )
    if blocked and flagged:
        reasons.append(f"unconverged: {_names(flagged)}")
    if candidate is None:
        return "inconclusive", f"{col.label}: inconclusive ({where}; {'; '.join(reasons)})"
    if reasons or n_images < MIN_IMAGES:
        but = f", but {'; '.join(reasons)}" if reasons else ""
        return "inconclusive", f"{col.label}: inconclusive ({where}; {detail}{but})"
    seeds = f"; {ONE_SEED}" if n_seeds == 1 else ""
    return candidate, f"{col.label}: {candidate} ({where}; {detail}{seeds})"


def rule_text(ref: str, counted: str = "a bin's n, or the test images of the boundary table") -> str:
    """The verdict rule in one paragraph, as claims.md states it (``counted``: which images a verdict counts)."""
    return (
        f"\"supported\" when {ref}'s interval lies entirely on the better side of every other ranked model's and "
        f'none of these runs is flagged unconverged (U); "not supported" when {ref}\'s run is not flagged and '
        "some model whose run is not flagged has its interval entirely on the better side of "
        f'{ref}\'s; otherwise "inconclusive" (reasons given). Any verdict on fewer than {MIN_IMAGES} images '
        f'({counted}) reads "inconclusive (n < {MIN_IMAGES}: ...)": with so few, a bootstrap '
        "interval of a mean is too narrow. Runs whose convergence could not be judged count as not flagged; runs "
        "trained with another recipe than the shared one (B) are not ranked, and a verdict on such a reference "
        "is never supported. With several seeds the intervals are two-level (seeds resampled, then images), so they "
        'hold the variation between training runs; with one seed a verdict may still read "supported" or "not '
        f'supported", on the image-level interval alone, and then says "{ONE_SEED}".'
    )


def _table(inp: Inputs, d: str, models: list[str], columns: list[Column], cell_of) -> Table:
    rows = [summary.make_row(inp, m, [d]) for m in models]
    cells = []
    for m in models:
        rankable = summary.is_rankable(inp, d, m)
        line = [cell_of(m, c) for c in columns]
        for c in line:
            c.rankable = rankable
        cells.append(line)
    return mark_best(Table(rows, columns, cells))


def intro_lines(inp: Inputs, models: list[str]) -> list[str]:
    """The head of claims.md: what is tested and the rules of every verdict."""
    ref = inp.names[inp.reference]
    bins = (
        "mean Dice (%) of the bin's images, 95% bootstrap CI in brackets."
        if len(inp.seeds) == 1
        else f"mean Dice (%) of the bin's images over {len(inp.seeds)} seeds ± the standard deviation between the "
        "seeds, with the 95% two-level bootstrap interval (seeds resampled, then the bin's images) in brackets."
    )
    return [
        "# The abstract's claims, tested on this run",
        "",
        f'The abstract claims that {ref} excels "in boundary accuracy and small-object segmentation". '
        "These tables test both claims on every model of this run; they are not tables of the paper. A third "
        f"verdict per dataset tests whether {ref} ranks first among the main models (ranking.md).",
        "",
        "- Lesion-size bins: per dataset, tertiles of the ground truth's foreground fraction over the test "
        "images with a non-empty mask (fixed by the ground truth, the same for every model); small <= first "
        f"tertile < medium <= second tertile < large. Cells: {bins}",
        f"- Boundary: HD95 (px, lower is better) and normalised surface Dice (NSD, %) at a tolerance of "
        f"{SURFACE_TOLERANCE_PX:g} px at the evaluation resolution; {uncertainty_text(inp)}.",
        f"- Verdict: {rule_text(ref)} Best per column in **bold**, second in *italics*; degenerate runs (D) "
        f"and runs trained with another recipe (B) are not ranked. {DAGGER_NOTE}",
        f"- Ranks first: from the bootstrap of the main models' ranking (ranking.md: {ranking_report.N_BOOT} "
        f'resamples of the test images, mean then rank): "supported" only if {ref}\'s 95% rank interval is [1, 1] '
        'and its run on that dataset is not flagged (D, U or B); "not supported" if an unflagged other model\'s '
        'interval is [1, 1]; otherwise "inconclusive", with the interval. The small-sample rule and the one-seed '
        "note apply as above.",
        f"- {flags.SMALL_SAMPLE_RULE}",
        "",
        summary.setting_text(inp, models),
        "",
    ]


def size_table(inp: Inputs, d: str, models: list[str]) -> tuple[Table, tuple[float, float], int, int]:
    """(the Dice-by-lesion-size table of ``d``, the bin edges, images without foreground, the reference's
    images in the small bin)."""
    bins, edges, empty = size_bins(inp.truth_fg[d])
    counts = bins.value_counts()
    columns = [Column(b, f"{b.capitalize()} (n={int(counts.get(b, 0))})", decimals=2) for b in BINS]
    dice = {m: summary.per_image(inp, d, m, "dice").dropna() for m in models}

    def size_cell(m, col):
        ids = [i for i in bins.index[bins == col.key] if i in dice[m].index]
        return summary.matrix_cell(summary.seed_matrix(inp, d, m, "dice", ids))

    small_n = len(dice[inp.reference].reindex(bins.index[bins == "small"]).dropna())
    return _table(inp, d, models, columns, size_cell), edges, empty, small_n


def dataset_lines(inp: Inputs, d: str, models: list[str], ranking: ranking_report.Ranking | None) -> list[str]:
    """The section of one dataset: both tables with their verdicts, the ranks-first verdict, the notes."""
    n_seeds = len(inp.seeds)
    size, (q1, q2), empty, small_n = size_table(inp, d, models)
    lines = [
        f"## {inp.dataset_names[d]}",
        "",
        f"### Dice by lesion size (small <= {fmt(q1)}% < medium <= {fmt(q2)}% < large, of the image area)",
        "",
        to_markdown(size),
        "",
    ]
    if empty:
        lines += [f"{empty} test images without foreground are in no bin.", ""]
    flagged_u = {m for m in models if summary.run_flags(inp, d, m)["U"]}
    small = verdict(size, 0, inp.reference, small_n, flagged_u, n_seeds=n_seeds)
    lines += [f"Verdict (small-object claim): {small}.", ""]
    boundary_cols = [
        Column("dice", "Dice (%)"),
        Column("hd95", "HD95 (px)", higher_is_better=False),
        Column("surface_dice", f"NSD@{SURFACE_TOLERANCE_PX:g}px (%)"),
    ]
    have_nsd = all("surface_dice" in inp.runs[(d, m, s)].per_image.columns for m in models for s in inp.seeds)

    def boundary_cell(m, col):
        return summary.metric_cell(inp, d, m, col.key) if col.key != "surface_dice" or have_nsd else Cell()

    boundary = _table(inp, d, models, boundary_cols, boundary_cell)

    def n_of(metric: str) -> int:
        return len(summary.per_image(inp, d, inp.reference, metric).dropna())

    lines += ["### Boundary accuracy", "", to_markdown(boundary), ""]
    if not have_nsd:
        lines += ["NSD not recorded: per_image.csv has no surface_dice column (evaluated before it existed).", ""]
    judged = [
        verdict(boundary, j, inp.reference, n_of(boundary_cols[j].key), flagged_u, n_seeds=n_seeds)
        for j in (1, 2)
        if have_nsd or j == 1
    ]
    lines += [f"Verdict (boundary claim): {'; '.join(judged)}.", ""]
    if ranking is not None:
        first = ranking_report.ranks_first(inp, ranking, d)[1].removeprefix("ranks first: ")
        lines += [f"Verdict ({inp.names[inp.reference]} ranks first): {first}.", ""]
    notes = summary.flag_notes(inp, models, [d])
    if any(r.flags for r in size.rows + boundary.rows):
        notes.insert(0, flags.describe_rules())
    return lines + ([*notes, ""] if notes else [])


def build(inp: Inputs, ranking: ranking_report.Ranking | None = None) -> str:
    """``claims.md`` (``ranking``: :func:`reports.ranking_report.rank_models` of ``inp``, computed when not given)."""
    ranking = ranking_report.rank_models(inp) if ranking is None else ranking
    models = inp.ordered(inp.models)
    lines = intro_lines(inp, models)
    for d in inp.datasets:
        lines += dataset_lines(inp, d, models, ranking)
    lines.append(provenance.markdown_block(inp.provenance))
    return "\n".join(lines)
