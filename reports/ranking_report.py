"""``ranking.md`` / ``ranking.tex``: the main models ranked per dataset with :mod:`reports.ranking` (the methods of
challengeR), beyond the paper.

Input of the analysis (:func:`rank_models`): per dataset (task) and main model (algorithm), each test image's Dice
(%) averaged over the seeds (:func:`reports.summary.per_image`), on the images every model scored; ``N_BOOT``
bootstrap resamples of the images per dataset, seed ``SEED``. A model's label carries its row flags over all
datasets (``DyGLNet (B)``), as every table's rows do, so a flagged run is never named first without its flag; where
a run flagged D or B on that dataset comes first under a method (such runs are not ranked in the other tables), a
sentence says so and names the first model without a flag.

Per dataset: the ranks under the four methods, the median bootstrap rank and 95% rank interval, Kendall's tau,
whether the winner changes across the methods, the Holm-corrected one-sided Wilcoxon tests; then the consensus over
the datasets. A stability summary opens the file, with the "ranks first" verdict of the reference model
(:func:`ranks_first`, which ``claims.md`` uses too).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from reports import flags, latex, provenance, summary
from reports.inputs import Inputs
from reports.ranking import RankingResult, TaskRanking, analyse, claim_first_supported
from reports.ranking.analysis import METHOD_LABELS, METHODS
from reports.ranking.render import (
    RANK_ALIGN,
    RANK_HEADERS,
    consensus_rows,
    methods_note,
    rank_rows,
    significance_markdown,
    significance_rows,
    tau_sentence,
    winner_sentence,
)
from reports.table import fmt, markdown_table

N_BOOT = 1000  # bootstrap resamples of the test images per dataset
SEED = 0
HEADERS = ["Model", "mean Dice (%)", *RANK_HEADERS[2:]]
FLAG_WORDS = {"D": "degenerate", "U": "unconverged", "B": "trained with another recipe"}


@dataclass(frozen=True)
class Ranking:
    """The analysis of the report's main models and how it maps to the run's keys."""

    result: RankingResult
    labels: dict[str, str]  # model key -> algorithm label (name and row flags)
    tasks: dict[str, str]  # dataset key -> task name (the dataset's label)
    left_out: dict[str, int]  # dataset key -> test images left out (not scored by every model)

    def task(self, d: str) -> TaskRanking:
        return self.result.tasks[self.tasks[d]]

    def model_of(self, label: str) -> str:
        return next(m for m, lab in self.labels.items() if lab == label)


def labels_of(inp: Inputs, models: list[str]) -> dict[str, str]:
    """model -> ``DyGLNet (B)``: its name (with its key where two models share the name) and its row flags over
    all datasets, as in every table."""
    names = [inp.names[m] for m in models]
    out = {}
    for m in models:
        marks = summary.make_row(inp, m, inp.datasets).flags
        name = inp.names[m] if names.count(inp.names[m]) == 1 else f"{inp.names[m]} [{m}]"
        out[m] = name + (f" ({', '.join(marks)})" if marks else "")
    return out


def long_table(inp: Inputs, models: list[str], labels: dict[str, str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """(task, algorithm, case, value) rows of per-image Dice averaged over seeds, and per dataset the number of
    test images left out because some model did not score them."""
    frames, left_out = [], {}
    for d in inp.datasets:
        dice = {m: summary.per_image(inp, d, m, "dice").dropna() for m in models}
        common = sorted(set.intersection(*(set(v.index) for v in dice.values())))
        left_out[d] = len(set().union(*(set(v.index) for v in dice.values()))) - len(common)
        for m in models:
            values = dice[m].reindex(common)
            frames.append(
                pd.DataFrame(
                    {"task": inp.dataset_names[d], "algorithm": labels[m], "case": common, "value": values.to_numpy()}
                )
            )
    return pd.concat(frames, ignore_index=True), left_out


def rank_models(inp: Inputs) -> Ranking | None:
    """The ranking analysis of the main models' per-image Dice (module docstring); None with fewer than two
    main models or a dataset on which no image was scored by all of them."""
    models = inp.main_models()
    if len(models) < 2:
        return None
    labels = labels_of(inp, models)
    table, left_out = long_table(inp, models, labels)
    if any(table[table["task"] == inp.dataset_names[d]].empty for d in inp.datasets):
        return None
    result = analyse(table, smaller_better=False, n_boot=N_BOOT, seed=SEED)
    return Ranking(result, labels, {d: inp.dataset_names[d] for d in inp.datasets}, left_out)


def flags_on(inp: Inputs, d: str, m: str) -> tuple[str, ...]:
    """The row flags of model ``m`` on dataset ``d`` alone: D, U, B."""
    found = summary.run_flags(inp, d, m)
    return tuple(k for k in ("D", "U") if found[k]) + (("B",) if inp.unequal(m) else ())


def _interval(t: TaskRanking, label: str) -> tuple[int, int]:
    lo, hi = t.bootstrap.interval[t.algorithms.index(label)]
    return int(lo), int(hi)


def ranks_first(inp: Inputs, ranking: Ranking, d: str) -> tuple[str, str]:
    """(outcome, text) of the claim that the reference model ranks first on ``d``: "supported" only if its 95%
    bootstrap rank interval is [1, 1] and its run is not flagged (D, U or B) on ``d``; "not supported" if an
    unflagged other model's interval is [1, 1]; else "inconclusive", with the interval. Fewer than
    ``flags.MIN_IMAGES`` images: "inconclusive (n < 20: ...)". One seed: the text says seed variation is not
    measured (the rule of :mod:`reports.claims`)."""
    t, ref = ranking.task(d), inp.reference
    if ref not in ranking.labels:
        return "not measured", "ranks first: not measured (the reference is not one of the main models)"
    lo, hi = _interval(t, ranking.labels[ref])
    where = f"{inp.names[ref]}'s 95% rank interval [{lo}, {hi}] of {len(t.algorithms)}"
    marks = flags_on(inp, d, ref)
    firsts = [m for m, a in ranking.labels.items() if m != ref and claim_first_supported(ranking.result, t.task, a)]
    clean = [m for m in firsts if not flags_on(inp, d, m)]
    if t.n_cases < flags.MIN_IMAGES:
        return "inconclusive", f"ranks first: inconclusive (n < {flags.MIN_IMAGES}: {t.n_cases} images; {where})"
    seeds = f"; {flags.ONE_SEED}" if len(inp.seeds) == 1 else ""
    if claim_first_supported(ranking.result, t.task, ranking.labels[ref]):
        if not marks:
            return "supported", f"ranks first: supported ({where}{seeds})"
        why = ", ".join(f"{FLAG_WORDS[k]} ({k})" for k in marks)
        return "inconclusive", f"ranks first: inconclusive ({where}, but its run is flagged: {why})"
    if clean:
        names = ", ".join(inp.names[m] for m in clean)
        return "not supported", f"ranks first: not supported ({names}: rank interval [1, 1]; {where}{seeds})"
    flagged = [f"{ranking.labels[m]}: flagged" for m in firsts]
    extra = f"; [1, 1] only for {', '.join(flagged)}" if flagged else ""
    return "inconclusive", f"ranks first: inconclusive ({where}{extra})"


def flagged_winner_sentence(inp: Inputs, ranking: Ranking, d: str) -> str:
    """A sentence when a run flagged D or B on ``d`` comes first under a method, naming the first model without a
    flag by mean then rank; "" otherwise."""
    t = ranking.task(d)
    unfair = {m: [k for k in flags_on(inp, d, m) if k in ("D", "B")] for m in ranking.labels}
    firsts = {ranking.model_of(w) for k in METHODS for w in t.winners(k)}
    shown = [m for m in ranking.labels if m in firsts and unfair[m]]
    if not shown:
        return ""
    methods = [METHOD_LABELS[k] for k in METHODS if any(unfair[ranking.model_of(w)] for w in t.winners(k))]
    named = "; ".join(f"{ranking.labels[m]}: {', '.join(FLAG_WORDS[k] for k in unfair[m])}" for m in shown)
    clean = [t.algorithms[i] for i in t.order() if not flags_on(inp, d, ranking.model_of(t.algorithms[i]))]
    after = f"the first model without a flag by mean then rank is {clean[0]}" if clean else "every model is flagged"
    return (
        f"First place under {', '.join(methods)} goes to a run the other tables do not rank ({named}): not a fair "
        f"winner; {after}."
    )


def stability_rows(inp: Inputs, ranking: Ranking) -> tuple[list[str], list[list[str]]]:
    """Headers and one row per dataset: images, first by mean then rank and its rank interval, Kendall's tau,
    whether the four methods agree on the winner, the reference's interval and the "ranks first" verdict."""
    ref = inp.names[inp.reference]
    headers = ["Dataset", "images", "first (mean→rank)", "its 95% rank interval", "Kendall's tau (median)"]
    headers += ["same winner under all four methods", f"{ref}: rank interval", f"{ref} ranks first"]
    rows = []
    for d in inp.datasets:
        t = ranking.task(d)
        first = t.winners("mean_then_rank")
        same = all(t.winners(k) == first for k in METHODS)
        ref_interval = (
            "[{}, {}]".format(*_interval(t, ranking.labels[inp.reference])) if inp.reference in ranking.labels else "–"
        )
        verdict = ranks_first(inp, ranking, d)[1].removeprefix("ranks first: ")
        rows.append(
            [
                inp.dataset_names[d],
                str(t.n_cases),
                ", ".join(first),
                ", ".join("[{}, {}]".format(*_interval(t, w)) for w in first),
                fmt(t.bootstrap.tau_median, 3),
                "yes" if same else "no",
                ref_interval,
                verdict,
            ]
        )
    return headers, rows


def dice_rank_rows(t: TaskRanking) -> list[list[str]]:
    """The rank table's rows (``HEADERS``) with the mean Dice at two decimals, as in the other tables."""
    rows = rank_rows(t)
    for row in rows:
        row[1] = fmt(float(t.data.values[:, t.algorithms.index(row[0])].mean()))
    return rows


def task_lines(inp: Inputs, ranking: Ranking, d: str) -> list[str]:
    """The Markdown section of one dataset."""
    t, alpha = ranking.task(d), ranking.result.settings.alpha
    left = ranking.left_out[d]
    images = f"{t.n_cases} test images" + (f" ({left} left out: not scored by every model)" if left else "") + "."
    unfair = flagged_winner_sentence(inp, ranking, d)
    return [
        f"## {t.task}",
        "",
        images,
        "",
        markdown_table(HEADERS, dice_rank_rows(t), RANK_ALIGN),
        "",
        tau_sentence(t),
        "",
        winner_sentence(t) + (f" {unfair}" if unfair else ""),
        "",
        *significance_markdown(t, alpha),
    ]


def intro(inp: Inputs) -> str:
    seeds = " averaged over the seeds" if len(inp.seeds) > 1 else ""
    return (
        "The main models ranked on each dataset with the methods of challengeR (Wiesenfarth et al., Sci Rep 2021), "
        f"from each test image's Dice (%){seeds}: ranks under four ranking methods, the bootstrap stability of the "
        f"mean-then-rank ranking ({N_BOOT} resamples of the test images per dataset, seed {SEED}), pairwise one-sided "
        "Wilcoxon tests and the consensus over the datasets. Not a table of the paper. Letters after a name are the "
        f'row flags of the other tables (over all datasets). {inp.names[inp.reference]} ranks first: "supported" '
        'only if its 95% rank interval is [1, 1] and its run on that dataset is not flagged (D, U or B); "not '
        'supported" if an unflagged other model\'s interval is [1, 1]; otherwise "inconclusive".'
    )


def build(inp: Inputs, ranking: Ranking | None) -> tuple[str, str]:
    """(ranking.md, ranking.tex)."""
    models = inp.main_models()
    prov = inp.provenance
    title = "Ranking of the main models (not a table of the paper)"
    head = latex.header_comment(title, provenance.lines(prov))
    md = [f"# {title}", "", intro(inp), "", f"- {flags.SMALL_SAMPLE_RULE}", "", summary.setting_text(inp, models), ""]
    if ranking is None:
        line = "Nothing to rank: fewer than two main models, or a dataset with no image scored by every model."
        return "\n".join([*md, line, "", provenance.markdown_block(prov)]), head + f"% {line}\n"
    headers, rows = stability_rows(inp, ranking)
    md += ["## Stability per dataset", "", markdown_table(headers, rows, "lrlrrlrl"), ""]
    for d in inp.datasets:
        md += task_lines(inp, ranking, d)
    if len(inp.datasets) > 1:
        c_headers, c_rows = consensus_rows(ranking.result)
        md += [
            "## Consensus over the datasets",
            "",
            f"Mean of the mean-then-rank ranks over {len(inp.datasets)} datasets; interval: 95% bootstrap percentile "
            "interval (images resampled within each dataset).",
            "",
            markdown_table(["Model", *c_headers[1:]], c_rows, "l" + "r" * (len(c_headers) - 1)),
            "",
        ]
    notes = summary.flag_notes(inp, models, inp.datasets)
    if any(flags_on(inp, d, m) for d in inp.datasets for m in models):
        notes.insert(0, flags.describe_rules())
    words = "Here a task is a dataset, a case a test image and an algorithm a main model. "
    md += ["## Methods", "", words + methods_note(ranking.result), "", *notes]
    md += ([""] if notes else []) + [provenance.markdown_block(prov)]
    return "\n".join(md), head + "\n" + "\n\n".join(latex_floats(inp, ranking)) + "\n"


def _tex_significance(rows: list[list[str]]) -> list[list[str]]:
    """Significance rows for LaTeX: a bold (significant) p becomes ``p*``."""
    return [[c[2:-2] + "*" if c.startswith("**") else c for c in row] for row in rows]


def latex_floats(inp: Inputs, ranking: Ranking) -> list[str]:
    """The stability summary, per dataset the rank table and the significance table, and the consensus."""
    models = inp.main_models()
    setting = summary.setting_text(inp, models)
    headers, rows = stability_rows(inp, ranking)
    caption = (
        f"Stability of the ranking of the main models per dataset: first by mean then rank and its 95% bootstrap rank "
        f"interval ({N_BOOT} resamples of the test images, seed {SEED}), Kendall's tau between the bootstrap and "
        f"observed rankings, whether the four ranking methods agree, and whether {inp.names[inp.reference]} ranks "
        f"first. {setting}"
    )
    floats = [latex.text_float(headers, rows, "lrlrrlrl", latex.escape(caption), "tab:ranking-stability")]
    for d in inp.datasets:
        t = ranking.task(d)
        context = summary.setting_text(inp, models, [d])
        caption = (
            f"Ranks of the main models on {t.task} ({t.n_cases} test images, per-image Dice) under four ranking "
            f"methods, with the median and 95% interval of the mean-then-rank rank over {N_BOOT} bootstrap resamples "
            f"of the images (seed {SEED}). Ties share the best rank. {winner_sentence(t)} {context}"
        )
        label = f"tab:ranking-{d}".replace("_", "")
        floats.append(latex.text_float(HEADERS, dice_rank_rows(t), RANK_ALIGN, latex.escape(caption), label))
        s_headers, s_rows = significance_rows(t, ranking.result.settings.alpha)
        caption = (
            f"{t.task}: Holm-adjusted one-sided p that the row model's per-image Dice is higher than the column "
            f"model's (paired Wilcoxon signed-rank, Holm over the dataset's ordered pairs; *: p ≤ "
            f"{ranking.result.settings.alpha:g}). {context}"
        )
        align = "l" + "r" * (len(s_headers) - 1)
        floats.append(
            latex.text_float(s_headers, _tex_significance(s_rows), align, latex.escape(caption), f"{label}-tests")
        )
    if len(inp.datasets) > 1:
        c_headers, c_rows = consensus_rows(ranking.result)
        caption = (
            f"Consensus over {len(inp.datasets)} datasets: each main model's mean mean-then-rank rank with a 95% "
            f"bootstrap interval, and its rank on each dataset. {setting}"
        )
        align = "l" + "r" * (len(c_headers) - 1)
        floats.append(
            latex.text_float(["Model", *c_headers[1:]], c_rows, align, latex.escape(caption), "tab:ranking-consensus")
        )
    return floats


def metrics(inp: Inputs, ranking: Ranking | None) -> dict:
    """Per dataset, the rank stability for ``dvc metrics``: Kendall's tau (median) and, per main model, its
    mean-then-rank rank and 95% bootstrap rank interval."""
    if ranking is None:
        return {}
    out = {}
    for d in inp.datasets:
        t = ranking.task(d)
        models = {}
        for m, label in ranking.labels.items():
            i = t.algorithms.index(label)
            lo, hi = _interval(t, label)
            models[m] = {"rank": int(t.ranks["mean_then_rank"][i]), "rank_ci95_low": lo, "rank_ci95_high": hi}
        tau = t.bootstrap.tau_median
        out[d] = {"kendall_tau": None if tau != tau else round(tau, 4), "models": models}
    return out
