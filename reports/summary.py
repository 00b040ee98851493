"""Numbers with their uncertainty, from the loaded runs.

One seed: the mean over test images with its 95% bootstrap confidence interval (from ``metrics.json``
where the evaluation wrote it, else computed here from ``per_image.csv`` with the same seeded
percentile bootstrap, 1000 resamples). Several seeds: seeds are a level of the statistics: the mean over
seeds of each seed's mean, the standard deviation between the seeds' means, and the 95% interval of a
two-level bootstrap (:func:`engine.stats.two_level_bootstrap`: seeds resampled, then test images, the same
images for every drawn seed). Per-image values are averaged over seeds before paired statistics.
Also the sentence every table's caption carries: the datasets and the recipe, and whether it is the paper's.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd

from engine.metric_names import PAPER_METRICS
from engine.stats import summarize, two_level_bootstrap
from reports import flags, paper
from reports.inputs import Inputs
from reports.table import Cell, Row

N_BOOT = 1000
SEED_DRAWS = 1  # seeds the seed draws of :func:`two_level_interval` (the image draws use 0, 1, ...)
EVALUATED = (*PAPER_METRICS, "hd95")  # summarised in metrics.json by pipeline.evaluate


def seed_mean(inp: Inputs, d: str, m: str, s: int, metric: str) -> dict | None:
    """{mean, ci95_low, ci95_high} of one run, or None when the run lacks the metric."""
    run = inp.runs[(d, m, s)]
    entry = run.metrics.get(metric)
    # metrics.json's contract covers the six paper metrics (percent) and HD95 (px); others come from per_image.csv
    if metric in EVALUATED and isinstance(entry, dict) and {"mean", "ci95_low", "ci95_high"} <= set(entry):
        return entry
    if metric not in run.per_image.columns:
        return None
    return summarize(run.per_image[metric].to_numpy(dtype=float), n_boot=N_BOOT)


def seed_matrix(inp: Inputs, d: str, m: str, metric: str, ids: list[str] | None = None) -> np.ndarray | None:
    """Seeds x images matrix of a metric's per-image values (reported unit): the images ``ids`` in that order, or
    those every seed scored in the first seed's order. None when a seed lacks the metric or one of the images, or
    a value is not finite."""
    series = []
    for s in inp.seeds:
        frame = inp.runs[(d, m, s)].per_image
        if metric not in frame.columns:
            return None
        series.append(frame.set_index("id")[metric].astype(float))
    if ids is None:
        common = set.intersection(*(set(x.index) for x in series))
        ids = [i for i in series[0].index if i in common]
    matrix = np.array([x.reindex(ids).to_numpy(dtype=float) for x in series]).reshape(len(series), len(ids))
    return matrix if np.isfinite(matrix).all() else None


def seeds_cell(mean: float, seed_means: list[float], low: float, high: float) -> Cell:
    """A cell of several seeds: ``mean``, the standard deviation of ``seed_means``, the interval (low, high)."""
    return Cell(mean, low, high, "seeds", spread=float(np.std(seed_means, ddof=1)))


def metric_cell(inp: Inputs, d: str, m: str, metric: str) -> Cell:
    """The table cell of one metric of one (dataset, model): value and interval as in the module doc."""
    per_seed = [seed_mean(inp, d, m, s, metric) for s in inp.seeds]
    if any(p is None for p in per_seed):
        return Cell()
    if len(per_seed) == 1:
        p = per_seed[0]
        return Cell(float(p["mean"]), float(p["ci95_low"]), float(p["ci95_high"]), "ci")
    means = [float(p["mean"]) for p in per_seed]
    mean, matrix = float(np.mean(means)), seed_matrix(inp, d, m, metric)
    if matrix is None:  # no per-image values to resample: the spread between seeds alone
        std = float(np.std(means, ddof=1))
        return Cell(mean, mean - std, mean + std, "std")
    boot = two_level_bootstrap(matrix, n_boot=N_BOOT, seed=0)
    return seeds_cell(mean, means, boot["ci95_low"], boot["ci95_high"])


def matrix_cell(matrix: np.ndarray | None) -> Cell:
    """Mean of a seeds x images matrix (reported unit) with its interval: one seed, the image bootstrap's CI
    (``kind="ci"``, as :func:`values_cell`); several, the standard deviation between seeds and the two-level
    interval (``"seeds"``). An empty cell for None or no image."""
    if matrix is None or matrix.size == 0:
        return Cell()
    boot = two_level_bootstrap(matrix, n_boot=N_BOOT, seed=0)
    if len(matrix) == 1:
        return Cell(boot["mean"], boot["ci95_low"], boot["ci95_high"], "ci")
    return seeds_cell(boot["mean"], list(matrix.mean(axis=1)), boot["ci95_low"], boot["ci95_high"])


def per_image(inp: Inputs, d: str, m: str, metric: str) -> pd.Series:
    """Per-image values (reported unit), averaged over seeds, indexed by image id; empty if not recorded."""
    frames = [inp.runs[(d, m, s)].per_image for s in inp.seeds]
    if any(metric not in f.columns for f in frames):
        return pd.Series(dtype=float)
    stacked = pd.concat([f[["id", metric]] for f in frames])
    return stacked.groupby("id", sort=True)[metric].mean()


def values_cell(values: np.ndarray, seed: int = 0) -> Cell:
    """Mean and bootstrap 95% CI of per-image values (already in the reported unit)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return Cell()
    s = summarize(values, n_boot=N_BOOT, seed=seed)
    return Cell(s["mean"], s["ci95_low"], s["ci95_high"], "ci")


def resampled_seed_means(matrix: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_seeds): each seed's mean over a resample of the images (columns of ``matrix``), the same
    images for every seed; drawn as :func:`engine.stats.bootstrap_means` draws them (one seed: its resamples)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, matrix.shape[1], size=(n_boot, matrix.shape[1]))
    return matrix[:, images].mean(axis=2).T


def two_level_interval(seed_means: np.ndarray, seed: int = SEED_DRAWS) -> tuple[float, float]:
    """95% percentile interval of the mean over resampled seeds of ``seed_means`` ((n_boot, n_seeds) values of
    image resamples, e.g. sums of :func:`resampled_seed_means`): seeds drawn with replacement (seeded)."""
    n_boot, n_seeds = seed_means.shape
    draws = np.random.default_rng(seed).integers(0, n_seeds, size=(n_boot, n_seeds))
    grand = np.take_along_axis(seed_means, draws, axis=1).mean(axis=1)
    low, high = np.percentile(grand, [2.5, 97.5])
    return float(low), float(high)


def mdice_cell(inp: Inputs, m: str) -> Cell:
    """Mean test Dice over the datasets of this run, with its uncertainty.

    Each dataset's images are resampled on their own (seeded by the dataset's position), each seed's dataset
    means averaged; with several seeds the seeds are then resampled (:func:`two_level_interval`, a seed's runs
    on every dataset together) and the cell also holds the standard deviation of the seeds' mDice. One seed: the
    percentile bootstrap over images alone."""
    matrices = [seed_matrix(inp, d, m, "dice") for d in inp.datasets]
    per_seed = [np.mean([seed_mean(inp, d, m, s, "dice")["mean"] for d in inp.datasets]) for s in inp.seeds]
    mean = float(np.mean(per_seed))
    boots = [
        resampled_seed_means(x, N_BOOT, seed=k) if x is not None else np.full((N_BOOT, len(inp.seeds)), np.nan)
        for k, x in enumerate(matrices)
    ]
    low, high = two_level_interval(np.mean(boots, axis=0))
    if len(inp.seeds) == 1:
        return Cell(mean, low, high, "ci")
    return seeds_cell(mean, per_seed, low, high)


def run_flags(inp: Inputs, d: str, m: str) -> dict[str, list[int]]:
    """{"D": seeds flagged degenerate, "U": seeds flagged unconverged, "D?"/"U?": seeds not judged}."""
    out: dict[str, list[int]] = {"D": [], "U": [], "D?": [], "U?": []}
    for s in inp.seeds:
        run = inp.runs[(d, m, s)]
        deg, unc = flags.degenerate(run.per_image), flags.unconverged(run.log)
        for key, value in (("D", deg), ("U", unc)):
            if value is None:
                out[key + "?"].append(s)
            elif value:
                out[key].append(s)
    return out


def make_row(inp: Inputs, m: str, datasets: list[str], group: str | None = None, ignore: tuple[str, ...] = ()) -> Row:
    """A table row of model ``m`` with its flags over ``datasets``: D, U, and B unless its recipe differs only in
    the keys ``ignore`` (the difference a table is about)."""
    found = [run_flags(inp, d, m) for d in datasets]
    marks = tuple(k for k in ("D", "U") if any(f[k] for f in found))
    if inp.unequal(m, ignore):
        marks += ("B",)
    return Row(m, inp.names[m], inp.families[m] if group is None else group, marks)


def is_rankable(inp: Inputs, d: str, m: str, ignore: tuple[str, ...] = ()) -> bool:
    """May model ``m`` be marked best or second on dataset ``d``: not degenerate, and trained with the shared recipe
    (less the keys ``ignore``)."""
    return not is_degenerate(inp, d, m) and not inp.unequal(m, ignore)


def recipe_note(inp: Inputs, models: list[str], ignore: tuple[str, ...] = ()) -> str | None:
    """``Recipe differs (B): DyGLNet: steps 60 vs 20.``, or None when every model follows the shared recipe."""
    parts = [f"{inp.names[m]}: {', '.join(inp.unequal(m, ignore).values())}" for m in models if inp.unequal(m, ignore)]
    return f"Recipe differs (B): {'; '.join(parts)}." if parts else None


def _no_validation(inp: Inputs, d: str, m: str, s: int) -> bool:
    log = inp.runs[(d, m, s)].log
    return log is not None and len(log) >= 2 and not np.isfinite(flags.val_dice_percent(log)).any()


def flag_notes(inp: Inputs, models: list[str], datasets: list[str], ignore: tuple[str, ...] = ()) -> list[str]:
    """Which runs are flagged, and for how many the flags could not be judged (and why)."""
    flagged, unjudged = [], {"D": 0, "U": 0}
    no_val = sum(_no_validation(inp, d, m, s) for m in models for d in datasets for s in inp.seeds)
    for m in models:
        for d in datasets:
            f = run_flags(inp, d, m)
            words = []
            for key, word in (("D", "degenerate"), ("U", "unconverged")):
                if f[key]:
                    seeds = "" if len(inp.seeds) == 1 else f" (seeds {', '.join(map(str, f[key]))})"
                    words.append(word + seeds)
                unjudged[key] += len(f[key + "?"])
            if words:
                flagged.append(f"{inp.names[m]} on {inp.dataset_names[d]}: {', '.join(words)}")
    notes = []
    if flagged:
        notes.append("Flagged runs: " + "; ".join(flagged) + ".")
    recipe = recipe_note(inp, models, ignore)
    if recipe:
        notes.append(recipe)
    total = len(models) * len(datasets) * len(inp.seeds)
    if unjudged["D"]:
        notes.append(
            f"Degenerate flag not computed for {unjudged['D']} of {total} runs (per_image.csv without pred_fg/true_fg)."
        )
    if unjudged["U"] and no_val == unjudged["U"]:
        notes.append(f"Unconverged flag (U) for {no_val} of {total} runs: not judged: no validation split.")
    elif unjudged["U"]:
        why = f"{no_val} with no validation split; the others without log.csv or with fewer than two epochs"
        notes.append(f"Unconverged flag (U) not judged for {unjudged['U']} of {total} runs ({why}).")
    return notes


def is_degenerate(inp: Inputs, d: str, m: str) -> bool:
    return bool(run_flags(inp, d, m)["D"])


def finite(x: float | None) -> bool:
    return x is not None and not math.isnan(x)


RECIPE_FORMS = {"img_size": "{} px", "budget": "{}", "batch_size": "batch {}", "lr": "lr {}"}
RECIPE_NAMES = {"img_size": "image size", "budget": "budget", "batch_size": "batch size", "lr": "learning rate"}


def _setting(key: str, value) -> str:
    return RECIPE_FORMS[key].format(value if isinstance(value, str) else f"{value:g}")


def recipe_text(inp: Inputs, models: list[str]) -> str:
    """The recipe of ``models`` (per-model overrides named) and whether it is the paper's, e.g. ``64 px, 8
    epochs, batch 16, lr 0.001: not the paper's recipe (224 px, 130 epochs, batch 16, lr 0.001); image size
    and epochs differ``. Compares image size, epochs, batch size and learning rate (``paper.RECIPE_KEYS``)."""
    recipes = {m: inp.recipes[m] for m in models if m in inp.recipes}
    if not recipes:
        return "recipe not recorded"
    theirs = paper.recipe()
    common = {k: Counter(r[k] for r in recipes.values()).most_common(1)[0][0] for k in paper.RECIPE_KEYS}
    overrides = []
    for m, r in recipes.items():
        diff = [_setting(k, r[k]) for k in paper.RECIPE_KEYS if r[k] != common[k]]
        if diff:
            overrides.append(f"{inp.names[m]}: {', '.join(diff)}")
    ours = ", ".join(_setting(k, common[k]) for k in paper.RECIPE_KEYS)
    ours += f" ({'; '.join(overrides)})" if overrides else ""
    paper_text = ", ".join(_setting(k, theirs[k]) for k in paper.RECIPE_KEYS)
    differ = [RECIPE_NAMES[k] for k in paper.RECIPE_KEYS if any(r[k] != theirs[k] for r in recipes.values())]
    if not differ:
        return f"{ours}: the paper's recipe ({paper_text})"
    named = differ[0] if len(differ) == 1 else ", ".join(differ[:-1]) + " and " + differ[-1]
    return f"{ours}: not the paper's recipe ({paper_text}); {named} differ{'s' if len(differ) == 1 else ''}"


SELECTION_WORDS = {
    "best_val_dice": "the epoch with the best validation Dice",
    "last": "the last epoch (no validation split)",
    "not recorded": "not recorded",
}


def seeds_text(inp: Inputs) -> str:
    """``one seed (42)`` or ``3 seeds (42, 43, 44)``."""
    listed = ", ".join(map(str, inp.seeds))
    return f"one seed ({listed})" if len(inp.seeds) == 1 else f"{len(inp.seeds)} seeds ({listed})"


def selection_text(inp: Inputs, datasets: list[str]) -> str:
    """Which checkpoint the runs of ``datasets`` kept, per rule: ``the last epoch (no validation split): TNBC``."""
    by_rule: dict[str, list[str]] = {}
    for d in datasets:
        for rule in inp.selection.get(d, ["not recorded"]):
            by_rule.setdefault(SELECTION_WORDS.get(rule, rule), []).append(inp.dataset_names[d])
    if len(by_rule) == 1:
        return next(iter(by_rule))
    return "; ".join(f"{rule}: {', '.join(names)}" for rule, names in by_rule.items())


def setting_text(inp: Inputs, models: list[str], datasets: list[str] | None = None) -> str:
    """One sentence for captions: the datasets, the recipe (see :func:`recipe_text`), the seeds and which
    checkpoint was kept."""
    datasets = inp.datasets if datasets is None else datasets
    return (
        f"Datasets: {', '.join(inp.dataset_names[d] for d in datasets)}. Recipe: {recipe_text(inp, models)}; "
        f"{seeds_text(inp)}. Checkpoint kept: {selection_text(inp, datasets)}."
    )
