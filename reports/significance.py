"""Paired tests of the reference model (DyGLNet) against every other model over per-image Dice.

Per dataset and model: the per-image Dice of both models (averaged over seeds per image) is paired by
image id; ``diff`` = reference − model in Dice points.

- Test: two-sided Wilcoxon signed-rank test (scipy, ``zero_method="wilcox"``: tied pairs, diff = 0, are
  dropped, so the effective n is the number of non-tied pairs, which is reported). No non-tied pair:
  p = 1. With n non-tied pairs the smallest attainable two-sided p is 2 / 2^n (n = 5: 0.0625).
- Multiple comparisons: Holm's step-down correction over the comparisons of one dataset (the family
  of tests behind one table); ``significant`` means Holm-adjusted p < ``ALPHA``.
- Direction: which model has the higher Dice, from the sign of the rank-biserial correlation.
- Effect size: matched-pairs rank-biserial correlation r = (R+ − R−) / (R+ + R−) over the non-tied
  pairs (R± = sums of the ranks of |diff| of the positive/negative differences; +1: the reference is
  better on every non-tied image), and the median paired difference with its 95% percentile-bootstrap
  CI (images resampled, ``N_BOOT`` resamples, seeded).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata, wilcoxon

from reports import flags, provenance, summary
from reports.inputs import Inputs
from reports.table import fmt, markdown_table

ALPHA = 0.05
N_BOOT = 2000
TIE_TOL = 1e-9


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def rank_biserial(diff: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of non-zero paired differences (0 when there are none)."""
    diff = diff[np.abs(diff) > TIE_TOL]
    if len(diff) == 0:
        return 0.0
    ranks = rankdata(np.abs(diff))
    total = ranks.sum()
    return float((ranks[diff > 0].sum() - ranks[diff < 0].sum()) / total)


def median_ci(diff: np.ndarray, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    samples = diff[rng.integers(0, len(diff), size=(N_BOOT, len(diff)))]
    low, high = np.percentile(np.median(samples, axis=1), [2.5, 97.5])
    return float(low), float(high)


def paired_tests(dice: dict[str, pd.Series], reference: str) -> pd.DataFrame:
    """One row per other model: n, non-tied n, median diff and CI, r, p, Holm p (``dice``: model -> per-image)."""
    rows = []
    ref = dice[reference]
    for model, values in dice.items():
        if model == reference:
            continue
        pair = pd.concat([ref, values], axis=1, join="inner").dropna()
        diff = (pair.iloc[:, 0] - pair.iloc[:, 1]).to_numpy(dtype=float)
        if len(diff) == 0:
            continue
        nonzero = int((np.abs(diff) > TIE_TOL).sum())
        p = 1.0 if nonzero == 0 else float(wilcoxon(diff[np.abs(diff) > TIE_TOL]).pvalue)
        low, high = median_ci(diff)
        rows.append(
            {
                "model": model,
                "n": len(diff),
                "n_untied": nonzero,
                "median_diff": float(np.median(diff)),
                "ci_low": low,
                "ci_high": high,
                "r": rank_biserial(diff),
                "p": p,
            }
        )
    frame = pd.DataFrame(rows, columns=["model", "n", "n_untied", "median_diff", "ci_low", "ci_high", "r", "p"])
    frame["p_holm"] = holm(frame["p"].tolist()) if len(frame) else []
    return frame


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


HEADERS = ["Model", "images", "untied", "median diff (95% CI)", "r", "p", "Holm p", "result"]
ALIGN = "lrrrrrrl"


def pair_verdict(inp: Inputs, m: str, r) -> str:
    """One paired test's result by the rules every verdict follows: a recipe that differs (B) or fewer than
    ``flags.MIN_IMAGES`` paired images never read "X better"."""
    reasons = []
    unequal = [inp.names[k] for k in (inp.reference, m) if inp.unequal(k)]
    if unequal:
        reasons.append(f"recipe differs ({', '.join(unequal)}: B)")
    if r["n"] < flags.MIN_IMAGES:
        reasons.append(flags.SMALL_SAMPLE)
    if reasons:
        return "; ".join(reasons)
    if r["p_holm"] < ALPHA:
        return f"{inp.names[inp.reference]} better" if r["r"] > 0 else f"{inp.names[m]} better"
    return "no significant difference"


def result_rows(inp: Inputs, dice: dict[str, pd.Series], order: list[str]) -> list[list[str]]:
    """The rows of one table (``HEADERS``): the reference against each model of ``order``, Holm over them all
    (``dice``: model -> per-image Dice, the reference's included)."""
    result = paired_tests(dice, inp.reference).set_index("model").reindex(order).dropna(how="all")
    rows = []
    for m, r in result.iterrows():
        verdict = pair_verdict(inp, m, r)
        rows.append(
            [
                inp.names[m],
                str(int(r["n"])),
                str(int(r["n_untied"])),
                f"{fmt(r['median_diff'])} ({fmt(r['ci_low'])} to {fmt(r['ci_high'])})",
                fmt(r["r"]),
                _p(r["p"]),
                _p(r["p_holm"]),
                verdict,
            ]
        )
    return rows


def build(inp: Inputs) -> str:
    ref_name = inp.names[inp.reference]
    lines = [
        "# Significance: paired Wilcoxon signed-rank tests",
        "",
        f"Per dataset, {ref_name} against every other model over per-image Dice on the test split"
        + (" (seeds averaged per image)" if len(inp.seeds) > 1 else "")
        + f". Two-sided; p-values Holm-corrected over the comparisons of each dataset; significant: Holm p < "
        f"{ALPHA:g}. `diff` = {ref_name} − model in Dice points; `untied` = pairs with a non-zero difference "
        "(the test's effective n); `r` = matched-pairs rank-biserial correlation (+1: "
        f"{ref_name} better on every untied image, −1: worse on every one). With n untied pairs the smallest "
        "possible two-sided p is 2/2^n, so fewer than 6 untied pairs can never be significant.",
        "",
        flags.SMALL_SAMPLE_RULE + " A pair in which either model was trained with another recipe than the shared "
        'one (B) reads "recipe differs".',
        "",
        summary.setting_text(inp, inp.models),
        "",
    ]
    order = [m for m in inp.ordered(inp.models) if m != inp.reference]
    for d in inp.datasets:
        dice = {m: summary.per_image(inp, d, m, "dice") for m in [inp.reference, *order]}
        rows = result_rows(inp, dice, order)
        lines += [f"## {inp.dataset_names[d]}", "", markdown_table(HEADERS, rows, ALIGN), ""]
        note = summary.recipe_note(inp, [inp.reference, *order])
        lines += [note, ""] if note else []
    lines.append(provenance.markdown_block(inp.provenance))
    return "\n".join(lines)
