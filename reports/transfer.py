"""``transfer.md`` / ``transfer.tex``: the paper's generalisation claim tested across datasets.

The paper claims DyGLNet's "generalization ability" but tests each model on the test split of the dataset it
was trained on. Here each model trained on a pair's source is scored, without retraining, on the target's test
split (stage ``transfer``, ``params.yaml`` ``transfer.pairs``), as polyp and skin-lesion work does (Kvasir-SEG
-> CVC-ClinicDB and back, ISIC2016 -> PH2). Per pair and model:

- **in-domain**: Dice on the source's own test split (the value of ``comparison.md``);
- **on target**: Dice on the target's test split, with its interval as every table's (``reports.summary``);
- **drop**: in-domain minus on target, in Dice points (lower is better). Its interval: one seed: 95%
  percentile bootstrap of the difference of the two means, each test set resampled on its own (they hold
  different images; ``N_BOOT`` resamples, seeded); several seeds: the standard deviation between the per-seed
  drops and the 95% two-level interval (seeds resampled, then each test set's images on its own);
- **rank** of the Dice on target among the ranked models (1 = best; equal printed values share a rank);
- the reference (DyGLNet) against every model on the target's images: paired Wilcoxon with Holm's
  correction over the models of the pair (``reports.significance``).

**Verdict**: :func:`reports.claims.judge`, the rule of ``claims.md`` (intervals, number of images, the (U) flags),
on the Dice on target (the claim: a higher Dice on unseen data than every other model) and on the drop. Its
inputs here: the (U) flag of each model's training run on the source; as images, the target's test images
(for the drop, the smaller of the two test sets). A model degenerate on the source (D: its training failed)
is not ranked; one that predicts little foreground on the target only is ranked (that is failing to
transfer, what the table measures) and named in a note. The summary sentence counts the pairs by verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from reports import claims, flags, latex, provenance, significance, summary
from reports.comparison import marking_text, uncertainty_text
from reports.inputs import Inputs, dataset_label
from reports.table import DAGGER_NOTE, Cell, Column, Table, mark_best, markdown_table, to_markdown

N_BOOT = summary.N_BOOT
ARROW = "→"


def pair_key(source: str, target: str) -> str:
    return f"{source}->{target}"


def pair_name(source: str, target: str) -> str:
    return f"{dataset_label(source)} {ARROW} {dataset_label(target)}"


def target_view(inp: Inputs, source: str, target: str) -> Inputs:
    """``inp`` with one dataset, the pair, whose runs are the transfer runs: ``reports.summary`` reads them as
    it reads a dataset's runs (``pair_key`` is the dataset key; the logs are the source runs')."""
    key = pair_key(source, target)
    runs = {(key, m, s): run for (a, b, m, s), run in inp.transfer_runs.items() if (a, b) == (source, target)}
    return replace(inp, datasets=[key], runs=runs, dataset_names={key: pair_name(source, target)})


def drop_cell(inp: Inputs, view: Inputs, source: str, m: str) -> Cell:
    """In-domain minus on-target Dice (points) with its interval (module docstring)."""
    key = view.datasets[0]
    own, other = summary.seed_matrix(inp, source, m, "dice"), summary.seed_matrix(view, key, m, "dice")
    if own is None or other is None or not own.size or not other.size:
        return Cell()
    drops = own.mean(axis=1) - other.mean(axis=1)  # per seed
    boot = summary.resampled_seed_means(own, N_BOOT, seed=0) - summary.resampled_seed_means(other, N_BOOT, seed=1)
    low, high = summary.two_level_interval(boot)
    if len(inp.seeds) == 1:
        return Cell(float(drops[0]), low, high, "ci")
    return summary.seeds_cell(float(drops.mean()), list(drops), low, high)


def ranks(cells: list[Cell], decimals: int) -> list[Cell]:
    """Rank of each rankable cell's value, higher first (equal printed values share a rank); "–" for the rest."""
    values = [round(c.value, decimals) for c in cells if c.rankable and not c.missing]
    return [
        Cell(float(1 + sum(v > round(c.value, decimals) for v in values))) if c.rankable and not c.missing else Cell()
        for c in cells
    ]


def pair_table(inp: Inputs, source: str, target: str, models: list[str]) -> Table:
    view = target_view(inp, source, target)
    key = view.datasets[0]
    columns = [
        Column("in_domain", f"In-domain Dice on {dataset_label(source)} (%)", short="In-domain Dice"),
        Column("target", f"Dice on {dataset_label(target)} (%)", short="Dice on target"),
        Column("drop", "Drop (points)", higher_is_better=False, short="Drop"),
        Column("rank", "Rank", ranked=False, decimals=0),
    ]
    cells = []
    for m in models:
        line = [
            summary.metric_cell(inp, source, m, "dice"),
            summary.metric_cell(view, key, m, "dice"),
            drop_cell(inp, view, source, m),
        ]
        for c in line:
            c.rankable = summary.is_rankable(inp, source, m)
        cells.append(line)
    for line, rank in zip(cells, ranks([line[1] for line in cells], columns[1].decimals), strict=True):
        line.append(rank)
    rows = [summary.make_row(inp, m, [source]) for m in models]
    return mark_best(Table(rows, columns, cells))


def target_degenerate(inp: Inputs, source: str, target: str, models: list[str]) -> list[str]:
    """Models whose prediction on the target is degenerate by the (D) rule (any seed), but not on the source."""
    out = []
    for m in models:
        found = [flags.degenerate(inp.transfer_runs[(source, target, m, s)].per_image) for s in inp.seeds]
        if any(found) and not summary.is_degenerate(inp, source, m):
            out.append(inp.names[m])
    return out


def _counted(outcomes: list[tuple[str, str]], ref: str) -> str:
    """The summary sentence: how many pairs got each verdict."""
    total = len(outcomes)
    if total == 1:
        outcome, name = outcomes[0]
        return f"On this run the claim that {ref} generalises better is **{outcome}** on {name}."
    parts = []
    for word in claims.OUTCOMES:
        names = [n for o, n in outcomes if o == word]
        if names:
            parts.append(f"**{word}** on {len(names)} of {total} pairs ({', '.join(names)})")
    return f"On this run the claim that {ref} generalises better is {'; '.join(parts)}."


@dataclass
class PairResult:
    """One pair, computed: its table, verdicts, paired tests and notes, ready to render."""

    source: str
    target: str
    table: Table
    n_source: int  # the reference's test images on the source
    n_target: int  # and on the target
    outcome: str  # one of claims.OUTCOMES, for the summary sentence
    on_target: str  # the verdict's sentence on the Dice on target
    on_drop: str  # and on the drop
    tests: list[list[str]]  # the rows of the paired tests (significance.HEADERS)
    notes: list[str]

    @property
    def name(self) -> str:
        return pair_name(self.source, self.target)


def pair_result(inp: Inputs, source: str, target: str, models: list[str]) -> PairResult:
    """The table of one pair, its verdicts on the Dice on target and on the drop, the paired tests and the notes."""
    view = target_view(inp, source, target)
    key = view.datasets[0]
    table = pair_table(inp, source, target, models)
    unconverged = {m for m in models if summary.run_flags(inp, source, m)["U"]}
    n_target = len(summary.per_image(view, key, inp.reference, "dice").dropna())
    n_source = len(summary.per_image(inp, source, inp.reference, "dice").dropna())
    n_seeds = len(inp.seeds)
    outcome, on_target = claims.judge(table, 1, inp.reference, n_target, unconverged, n_seeds=n_seeds)
    on_drop = claims.verdict(table, 2, inp.reference, min(n_source, n_target), unconverged, n_seeds=n_seeds)
    order = [m for m in models if m != inp.reference]
    dice = {m: summary.per_image(view, key, m, "dice") for m in [inp.reference, *order]}
    tests = significance.result_rows(inp, dice, order)
    notes = summary.flag_notes(inp, models, [source])
    if any(r.flags for r in table.rows):
        notes.insert(0, flags.describe_rules())
    lost = target_degenerate(inp, source, target, models)
    if lost:
        notes.append(
            f"Predicting less than {flags.DEGENERATE_RATIO:g} x the target's foreground on the target (ranked): "
            + ", ".join(lost)
            + "."
        )
    return PairResult(source, target, table, n_source, n_target, outcome, on_target, on_drop, tests, notes)


def build(inp: Inputs) -> tuple[str, str]:
    """(transfer.md, transfer.tex)."""
    models = inp.ordered(inp.models)
    if not inp.transfer_pairs:
        return _no_pairs(inp, models)
    results = [pair_result(inp, source, target, models) for source, target in inp.transfer_pairs]
    return render_markdown(inp, models, results), render_latex(inp, models, results)


def _intro(inp: Inputs) -> list[str]:
    """The title and the paragraph on what the paper tests and what is tested here."""
    ref = inp.names[inp.reference]
    return [
        "# Generalisation across datasets, tested on this run",
        "",
        f'The paper claims {ref}\'s "generalization ability" but tests each model on the test split of the dataset '
        "it was trained on. Here every model trained on a pair's source dataset is tested, without retraining, on "
        "the target dataset's test split (stage `transfer`). These tables are not tables of the paper.",
        "",
    ]


def _tex_header(inp: Inputs) -> str:
    """transfer.tex's opening comment: what the file is and the run's provenance."""
    return latex.header_comment(
        "Generalisation across datasets (not a table of the paper)", provenance.lines(inp.provenance)
    )


def _no_pairs(inp: Inputs, models: list[str]) -> tuple[str, str]:
    """Both files when ``transfer.pairs`` is empty: the introduction and a line that says so."""
    md = _intro(inp)
    md += ["No transfer pairs in this run (`transfer.pairs` in params.yaml is empty).", ""]
    md += [summary.setting_text(inp, models), ""]
    md.append(provenance.markdown_block(inp.provenance))
    tex = [_tex_header(inp), "% No transfer pairs in this run (transfer.pairs in params.yaml is empty)."]
    return "\n".join(md), "\n".join(tex) + "\n"


def _legend(inp: Inputs, models: list[str]) -> list[str]:
    """What the columns, the paired tests and the verdicts mean, and the setting of the runs."""
    ref = inp.names[inp.reference]
    return [
        f"- In-domain: Dice (%) on the source's own test split (as in comparison.md). On target: Dice (%) on the "
        f"target's test split. Drop: in-domain minus on target, in Dice points (lower is better). "
        f"{uncertainty_text(inp)[0].upper()}{uncertainty_text(inp)[1:]}"
        + "; the drop's interval resamples the two test sets independently (they hold different images).",
        "- Rank: of the Dice on the target (1 = best). Paired tests: "
        f"{ref} against each model on the target's images, two-sided Wilcoxon signed-rank, Holm-corrected over "
        "the models of the pair (as in significance.md).",
        "- Verdicts, on the Dice on the target (the claim) and on the drop: "
        + claims.rule_text(ref, "the target's test images; for the drop, the smaller of the two test sets")
        + " The flags "
        "and the convergence are those of each model's training run on the source; a model that predicts little "
        "foreground on the target only is ranked (that is failing to transfer). "
        f"{marking_text()} {DAGGER_NOTE}",
        f"- {flags.SMALL_SAMPLE_RULE}",
        "",
        summary.setting_text(inp, models),
        "",
    ]


def _pair_markdown(inp: Inputs, result: PairResult) -> list[str]:
    """One pair's section: its table, verdicts, paired tests and notes."""
    ref = inp.names[inp.reference]
    source, target = dataset_label(result.source), dataset_label(result.target)
    return [
        f"## {result.name}",
        "",
        f"{result.n_source} test images of {source}, {result.n_target} of {target}.",
        "",
        to_markdown(result.table),
        "",
        f"Verdicts: {result.on_target}; {result.on_drop}.",
        "",
        f"### Paired tests on {target}: {ref} against each model",
        "",
        markdown_table(significance.HEADERS, result.tests, significance.ALIGN),
        "",
        *([*result.notes, ""] if result.notes else []),
    ]


def render_markdown(inp: Inputs, models: list[str], results: list[PairResult]) -> str:
    """transfer.md: introduction, legend, the sentence that counts the verdicts, one section per pair."""
    md = _intro(inp) + _legend(inp, models)
    md += [_counted([(r.outcome, r.name) for r in results], inp.names[inp.reference]), ""]
    for result in results:
        md += _pair_markdown(inp, result)
    md.append(provenance.markdown_block(inp.provenance))
    return "\n".join(md)


def _pair_latex(inp: Inputs, models: list[str], result: PairResult) -> list[str]:
    """One pair's two floats: its table and its paired tests."""
    ref = inp.names[inp.reference]
    name, source, target = result.name, result.source, result.target
    caption = latex.escape(
        f"{name}: each model trained on {dataset_label(source)} and tested, without retraining, on "
        f"{dataset_label(target)}'s test split ({result.n_target} images): in-domain Dice, Dice on the target and "
        f"the drop (points, lower is better), "
    ) + (
        rf"{uncertainty_text(inp, True)}. {marking_text(True)} "
        + latex.escape(
            f"Verdicts: {result.on_target}; {result.on_drop}. " + summary.setting_text(inp, models, [source])
        )
    )
    table = replace(
        result.table,
        caption=caption,
        label=f"tab:transfer-{source}-{target}".replace("_", ""),
        tex_notes=[flags.SHORT_RULES] if any(r.flags for r in result.table.rows) else [],
    )
    tests = latex.text_float(
        significance.HEADERS,
        result.tests,
        significance.ALIGN,
        latex.escape(
            f"{name}: {ref} against each model on {dataset_label(target)}'s test images, paired two-sided "
            "Wilcoxon signed-rank tests over per-image Dice, Holm-corrected over the models; diff = "
            f"{ref} − model in Dice points, untied = pairs with a non-zero difference, r = matched-pairs "
            "rank-biserial correlation."
        ),
        f"tab:transfer-tests-{source}-{target}".replace("_", ""),
    )
    return [latex.table_float(table, wide=False), tests]


def render_latex(inp: Inputs, models: list[str], results: list[PairResult]) -> str:
    """transfer.tex: the header comment, then each pair's table and paired tests."""
    tex = [_tex_header(inp)]
    for result in results:
        tex += _pair_latex(inp, models, result)
    return "\n\n".join(tex) + "\n"
