"""What each figure shows, in words: its caption, and ``figures.md``, the Markdown that embeds the figures.

Every caption states the dataset(s), the image size (the prepared images' side), the training budget (the
optimiser steps each run recorded in its ``train.json``) and the recipe, and whether it is the paper's
(:func:`reports.summary.setting_text`). The same caption is written inside the PNG/PDF (under the axes,
:func:`reports.figures.add_caption`) and under the image in ``figures.md``.

The bubble plot's GFLOPs are those at the size the models trained at (``gflops_fvcore_train_size`` of the
complexity results, counted at ``train_size``) where every model has them; otherwise those at the complexity
stage's size, and the axis and the caption name both sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

from reports import flags, provenance, summary
from reports.complexity import input_size_text
from reports.figures import NO_VALIDATION, SIZE_LEGEND
from reports.inputs import Inputs
from reports.ranking_report import Ranking


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def image_size_text(inp: Inputs, datasets: list[str]) -> str:
    """The side of the prepared images of ``datasets``: ``32 x 32 px`` (``224 x 224 / 256 x 256 px`` when they
    differ)."""
    sizes = sorted({inp.image_size[d] for d in datasets})
    return " / ".join(f"{s} × {s}" for s in sizes) + " px"


def budget_text(inp: Inputs, datasets: list[str], models: list[str]) -> str:
    """The optimiser steps of the runs of ``models`` on ``datasets``, as their ``train.json`` record them."""
    train = {k: r.train for k, r in inp.runs.items() if k[0] in datasets and k[1] in models}
    return f"Optimiser steps made per run (train.json): {provenance.steps_text(train)}."


def context_text(inp: Inputs, datasets: list[str], models: list[str]) -> str:
    """The sentences every caption ends with: image size, budget, datasets and recipe."""
    images = f"Images: {image_size_text(inp, datasets)}."
    return f"{images} {budget_text(inp, datasets, models)} {summary.setting_text(inp, models, datasets)}"


def _at_size(row: dict, size: int) -> float | None:
    """A complexity result's GFLOPs at ``size`` (counted at the training size, or at the measured size when that
    is ``size``), None when it has none."""
    if _number(row.get("gflops_fvcore_train_size")) and row.get("train_size") == size:
        return float(row["gflops_fvcore_train_size"])
    return float(row["gflops_fvcore"]) if row.get("input_size") == size else None


@dataclass
class Gflops:
    """The bubble plot's GFLOPs: one value per model, the axis label and a sentence for the caption."""

    values: list[float]
    axis: str
    sentence: str


def bubble_gflops(inp: Inputs, models: list[str]) -> Gflops:
    """GFLOPs at the training size where every model's complexity result has them (never two sizes mixed), else
    at the complexity stage's size, with the axis naming both sizes."""
    rows = [inp.complexity[m] for m in models]
    trained = sorted({inp.recipes[m]["img_size"] for m in models if m in inp.recipes} | set(inp.image_size.values()))
    trained_text = " / ".join(f"{s} × {s}" for s in trained)
    at_train = [_at_size(r, trained[0]) if len(trained) == 1 else None for r in rows]
    if all(v is not None for v in at_train):
        values = [float(v) for v in at_train]
        axis = f"GFLOPs (fvcore) at {trained_text}, the training size"
        return Gflops(values, axis, f"fvcore GFLOPs of one image at the size the models trained at ({trained_text})")
    size = input_size_text(inp, models)
    measured = " / ".join(f"{s} × {s}" for s in size.split(" / "))
    values = [float(r["gflops_fvcore"]) for r in rows]
    axis = f"GFLOPs (fvcore) at {measured} (models trained at {trained_text})"
    sentence = (
        f"fvcore GFLOPs of one image at {measured}, the complexity stage's size, not at the {trained_text} the models "
        "trained at (the complexity results hold no GFLOPs at the training size; rerun the complexity stage)"
    )
    return Gflops(values, axis, sentence)


def bubble_caption(inp: Inputs, gflops: Gflops, row_flags: list[tuple[str, ...]]) -> str:
    """Caption of ``bubble.png``: axes, what a bubble's area encodes, the row flags, the context."""
    models = inp.main_models()
    names = ", ".join(inp.dataset_names[d] for d in inp.datasets)
    marks = f" Letters after a name are the tables' row flags: {flags.SHORT_RULES}" if any(row_flags) else ""
    legend = ", ".join(f"{v:g}" for v in SIZE_LEGEND[:-1]) + f" and {SIZE_LEGEND[-1]:g}%"
    return (
        f"Cost against accuracy (the paper's Figure 1): parameters (M) against {gflops.sentence}. Bubble area is "
        f"proportional to the mean test Dice over {names} (half the area, half the Dice; the legend's circles are "
        f"{legend}), so that close Dice values look close; each label gives the value (%). "
        f"Colour: family.{marks} {context_text(inp, inp.datasets, models)}"
    )


def qualitative_caption(inp: Inputs) -> str:
    """Caption of ``qualitative.png``: which images, which runs, what the colours mean, the context."""
    d = inp.qualitative_dataset
    name = inp.dataset_names.get(d, d)
    return (
        f"Qualitative comparison (the paper's Figure 6): {len(inp.samples)} evenly spaced test images of {name}, "
        f"the ground truth and each model's prediction (seed {inp.seeds[0]}) as an error overlay, with that "
        f"image's Dice (%). {context_text(inp, [d], inp.main_models())}"
    )


def curves_caption(inp: Inputs, losses: set[str]) -> str:
    """Caption of ``val_curves.png``: what each panel plots (and why it is the training loss where it is)."""
    names = [inp.dataset_names[d] for d in inp.datasets]
    validated = [n for n in names if n not in losses]
    parts = []
    if validated:
        parts.append(f"Validation Dice (%) per epoch, mean over the seeds with a log, on {', '.join(validated)}.")
    if losses:
        shown = ", ".join(n for n in names if n in losses)
        parts.append(f"{shown}: {NO_VALIDATION} (log.csv's val_dice is empty for every run).")
    return " ".join(["Training curves, one panel per dataset, one line per model.", *parts]) + (
        f" {context_text(inp, inp.datasets, inp.models)}"
    )


def _ranked(inp: Inputs, ranking: Ranking) -> str:
    """What the ranking figures rank, and their flags."""
    seeds = ", averaged over the seeds" if len(inp.seeds) > 1 else ""
    marks = any("(" in label for label in ranking.labels.values())
    flagged = f" Letters after a name are the tables' row flags: {flags.SHORT_RULES}" if marks else ""
    return f"The main models, from each test image's Dice (%){seeds}.{flagged}"


def ranking_captions(inp: Inputs, ranking: Ranking) -> dict[str, str]:
    """Captions of the ranking figures (:mod:`reports.ranking_figures`) by stem."""
    context = f"{_ranked(inp, ranking)} {context_text(inp, inp.datasets, inp.main_models())}"
    settings = ranking.result.settings
    boot = f"{settings.n_boot} bootstrap resamples of the test images (seed {settings.seed})"
    out = {
        "ranking_blob": (
            "Stability of the ranking (challengeR's blob plot), one panel per dataset: for each model (by its "
            f"observed mean-then-rank rank) the share of {boot} at each rank as dot area, the median rank (cross) and "
            f"the 95% rank interval (line); a model whose line covers rank 1 alone ranks first in at least 97.5% of "
            f"the resamples. {context}"
        ),
        "ranking_significance": (
            "Pairwise significance, one panel per dataset: cell (A, B) coloured where A's per-image Dice is higher "
            "than B's by a one-sided paired Wilcoxon signed-rank test, Holm-adjusted over the dataset's ordered "
            f"pairs, p ≤ {ranking.result.settings.alpha:g} (the Holm p printed in each cell); models by observed "
            f"rank. {context}"
        ),
        "ranking_methods": (
            "Rank of each model under four ranking methods (mean then rank, median then rank, rank then mean, test "
            f"then rank), one panel per dataset; ties share the best rank; lines that cross are rankings that "
            f"depend on the method. {context}"
        ),
    }
    if len(ranking.result.tasks) > 1:
        out["ranking_heatmap"] = (
            "Mean-then-rank rank of each model (rows, by consensus: the mean rank over the datasets) on each dataset "
            f"(columns). {context}"
        )
    return out


FIGURES = (
    ("bubble", "Cost against accuracy (paper Figure 1)"),
    ("qualitative", "Qualitative comparison (paper Figure 6)"),
    ("val_curves", "Training curves"),
    ("ranking_blob", "Ranking stability (blob plot; not a figure of the paper)"),
    ("ranking_significance", "Pairwise significance of the ranking (not a figure of the paper)"),
    ("ranking_methods", "Ranks under four ranking methods (not a figure of the paper)"),
    ("ranking_heatmap", "Rank by dataset (not a figure of the paper)"),
)


def markdown(inp: Inputs, captions: dict[str, str]) -> str:
    """``figures.md``: each figure (PNG, with its PDF linked) under a heading, its caption under it."""
    lines = [
        "# Figures",
        "",
        "Generated by `dvc repro` (stage `report`). Each caption is also printed inside its figure.",
        "",
    ]
    for stem, title in FIGURES:
        if stem not in captions:  # the ranking figures need two main models; the heatmap two datasets
            continue
        lines += [f"## {title}", "", f"![{title}]({stem}.png)", "", f"{captions[stem]} ([PDF]({stem}.pdf))", ""]
    return "\n".join(lines) + "\n" + provenance.markdown_block(inp.provenance)
