"""Issue 31 in the report: seeds as a level of the statistics."""

from __future__ import annotations

import re

import numpy as np
import pytest
from fakeruns import make_tree
from test_report import inputs_of

from engine.stats import summarize, two_level_bootstrap
from reports import claims, comparison, summary
from reports.table import Cell, Column, Row, Table, mark_best, to_markdown

SEEDS = r"\d+\.\d\d\**†?\** ± \d+\.\d\d \(\d+\.\d\d–\d+\.\d\d\)"  # value ± std between seeds (two-level interval)


# --- seeds: a level of the statistics --------------------------------------------------------------


def test_one_seed_cells_keep_the_image_bootstrap_interval(tmp_path):
    inp = inputs_of(make_tree(tmp_path, models=("dyglnet", "unet"), n=6))
    cell = summary.metric_cell(inp, "kvasir", "dyglnet", "dice")
    recorded = inp.runs[("kvasir", "dyglnet", 42)].metrics["dice"]
    assert (cell.kind, cell.value, cell.low, cell.high) == (
        "ci",
        recorded["mean"],
        recorded["ci95_low"],
        recorded["ci95_high"],
    )
    md, _ = comparison.build(inp)
    row = next(line for line in md.splitlines() if line.startswith("| Ours | DyGLNet"))
    assert "±" not in row and re.search(r"\d+\.\d\d\**†?\** \(\d+\.\d\d–\d+\.\d\d\)", row)
    # mDice over one dataset: the image bootstrap of that dataset, as before seeds were a level
    values = inp.runs[("kvasir", "dyglnet", 42)].per_image["dice"].to_numpy()
    mdice = summary.mdice_cell(inp, "dyglnet")
    expected = summarize(values, n_boot=summary.N_BOOT, seed=0)
    assert mdice.kind == "ci" and mdice.low == pytest.approx(expected["ci95_low"])
    assert mdice.high == pytest.approx(expected["ci95_high"])


def test_three_seeds_print_the_std_between_seeds_and_the_two_level_interval(tmp_path):
    inp = inputs_of(make_tree(tmp_path, models=("dyglnet", "unet"), seeds=(1, 2, 3), n=6))
    cell = summary.metric_cell(inp, "kvasir", "dyglnet", "dice")
    per_seed = [inp.runs[("kvasir", "dyglnet", s)].per_image["dice"].to_numpy() for s in (1, 2, 3)]
    boot = two_level_bootstrap(np.array(per_seed), n_boot=summary.N_BOOT, seed=0)
    seed_means = [inp.runs[("kvasir", "dyglnet", s)].metrics["dice"]["mean"] for s in (1, 2, 3)]
    assert cell.kind == "seeds" and cell.value == pytest.approx(np.mean(seed_means))
    assert cell.spread == pytest.approx(np.std(seed_means, ddof=1)) and cell.spread > 0
    assert (cell.low, cell.high) == pytest.approx((boot["ci95_low"], boot["ci95_high"]))
    assert cell.low < cell.value < cell.high
    md, tex = comparison.build(inp)
    row = next(line for line in md.splitlines() if line.startswith("| Ours | DyGLNet"))
    assert len(re.findall(SEEDS, row)) == 6  # the six metrics of the Kvasir-SEG table, each with both
    assert "two-level bootstrap interval (seeds resampled, then test images) in brackets" in md
    assert re.search(r"\{\\scriptsize\$\\pm\$\d+\.\d\}\$\^\{\+\d+\.\d\}_\{-\d+\.\d\}\$", tex)
    assert "in brackets" not in tex
    mdice = summary.mdice_cell(inp, "dyglnet")
    assert mdice.kind == "seeds" and mdice.low < mdice.value < mdice.high and mdice.spread > 0
    claims_md = claims.build(inp)
    size = claims_md.split("### Dice by lesion size")[1].split("###")[0]
    assert re.search(SEEDS, size)  # the lesion-size bins resample seeds, then the bin's images


def test_best_and_the_dagger_follow_the_two_level_interval_not_the_std():
    def table(b: Cell) -> Table:
        a = Cell(90.0, 89.0, 91.0, "seeds", spread=5.0)  # ± std overlaps the other's, the interval does not
        return mark_best(Table([Row("a", "A"), Row("b", "B")], [Column("dice", "Dice")], [[a], [b]]))

    apart = table(Cell(80.0, 79.0, 81.0, "seeds", spread=5.0))
    assert apart.cells[0][0].rank == 1 and not apart.cells[0][0].not_separable
    assert "**90.00** ± 5.00 (89.00–91.00)" in to_markdown(apart)
    close = table(Cell(89.5, 88.0, 90.5, "seeds", spread=0.1))  # small std, overlapping intervals
    assert close.cells[0][0].not_separable
