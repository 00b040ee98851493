"""One table model for every report: cells with their uncertainty, best/second marking, Markdown output.

A :class:`Table` has grouped rows (model families) and grouped columns (datasets); each :class:`Cell`
holds a value and, where known, the interval that goes with it: a 95% bootstrap confidence interval of
the mean over test images (``kind="ci"``, printed as ``91.34 (90.12–92.25)``); with several seeds the standard
deviation between the seeds' means and the 95% two-level bootstrap interval, seeds then images resampled
(``kind="seeds"``, printed ``91.34 ± 0.52 (90.10–92.31)``; ``low``/``high`` hold the interval, ``spread`` the
standard deviation); or a mean ± standard deviation alone (``kind="std"``, printed ``91.34 ± 0.52``).
:mod:`reports.latex` renders the same table as LaTeX.

Marking (:func:`mark_best`): per column, among the rows that may be ranked (degenerate runs may not),
the best value gets rank 1 and the next distinct value rank 2, compared at the printed precision (equal
printed values share the rank). When the best and the second-best intervals overlap, the best is not
separable from the second: its cell carries a dagger (``†``) and the table a footnote saying so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

FAMILY_ORDER = ["CNN", "Transformer", "Hybrid", "SMP", "Other", "Ablation", "Ours"]
DAGGER_NOTE = "† best and second best overlap in their intervals: the best is not separable from the second."


def family_rank(family: str) -> int:
    """Position of a model family in the paper's row order (unknown families go with "Other")."""
    return FAMILY_ORDER.index(family) if family in FAMILY_ORDER else FAMILY_ORDER.index("Other")


def fmt(value: float | None, decimals: int = 2, missing: str = "–") -> str:
    """A number with fixed decimals; ``missing`` for None/NaN; never a negative zero."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    text = f"{value:.{decimals}f}"
    if text.startswith("-") and float(text) == 0:
        text = text[1:]
    return text


@dataclass
class Cell:
    value: float = math.nan
    low: float | None = None  # interval, in the value's unit
    high: float | None = None
    kind: str = ""  # "ci": bootstrap 95% CI of the mean; "seeds": spread and two-level CI; "std": ± std; "": none
    rank: int = 0  # 1 best, 2 second best
    not_separable: bool = False  # best whose interval overlaps the second's
    rankable: bool = True  # False for cells of degenerate runs
    spread: float | None = None  # kind "seeds": standard deviation between the seeds' means

    @property
    def missing(self) -> bool:
        return self.value is None or math.isnan(self.value)


@dataclass
class Column:
    key: str  # metric key (direction and decimals come from the table builder)
    label: str
    group: str = ""  # column group heading (dataset), "" for none
    higher_is_better: bool = True
    decimals: int = 2
    ranked: bool = True
    short: str = ""  # narrower header for LaTeX ("" : the label)


@dataclass
class Row:
    key: str  # model key
    label: str
    group: str = ""  # family
    flags: tuple[str, ...] = ()  # e.g. ("D",) degenerate, ("U",) unconverged


@dataclass
class Table:
    rows: list[Row]
    columns: list[Column]
    cells: list[list[Cell]]
    caption: str = ""
    label: str = ""
    notes: list[str] = field(default_factory=list)  # Markdown notes (plain text)
    tex_notes: list[str] | None = None  # shorter notes for LaTeX; None: the Markdown notes
    row_header: str = "Model"
    group_header: str = "Family"

    def column_groups(self) -> list[tuple[str, int, int]]:
        """(heading, first column index, last column index) of each run of equal column groups."""
        spans: list[tuple[str, int, int]] = []
        for j, col in enumerate(self.columns):
            if spans and spans[-1][0] == col.group:
                spans[-1] = (col.group, spans[-1][1], j)
            else:
                spans.append((col.group, j, j))
        return spans

    def row_groups(self) -> list[tuple[str, list[int]]]:
        groups: list[tuple[str, list[int]]] = []
        for i, row in enumerate(self.rows):
            if groups and groups[-1][0] == row.group:
                groups[-1][1].append(i)
            else:
                groups.append((row.group, [i]))
        return groups

    @property
    def has_dagger(self) -> bool:
        return any(c.not_separable for r in self.cells for c in r)


def interval_text(cell: Cell, decimals: int) -> str:
    """The uncertainty part of a cell in plain text: `` (lo–hi)``, `` ± s (lo–hi)`` or `` ± s``."""
    if cell.missing or cell.low is None or cell.high is None:
        return ""
    if cell.kind == "seeds":
        return f" ± {fmt(cell.spread, decimals)} ({fmt(cell.low, decimals)}–{fmt(cell.high, decimals)})"
    if cell.kind == "std":
        return f" ± {fmt((cell.high - cell.low) / 2, decimals)}"
    return f" ({fmt(cell.low, decimals)}–{fmt(cell.high, decimals)})"


def _overlap(a: Cell, b: Cell) -> bool:
    if a.low is None or a.high is None or b.low is None or b.high is None:
        return False
    return a.low <= b.high and b.low <= a.high


def mark_best(table: Table) -> Table:
    """Set rank 1/2 and the not-separable flag in every ranked column (see the module docstring)."""
    for j, col in enumerate(table.columns):
        cells = [row[j] for row in table.cells]
        for c in cells:
            c.rank, c.not_separable = 0, False
        if not col.ranked:
            continue
        candidates = [c for c in cells if c.rankable and not c.missing]
        printed = sorted({round(c.value, col.decimals) for c in candidates}, reverse=col.higher_is_better)
        if not printed:
            continue
        best = [c for c in candidates if round(c.value, col.decimals) == printed[0]]
        second = [c for c in candidates if len(printed) > 1 and round(c.value, col.decimals) == printed[1]]
        for c in best:
            c.rank = 1
        for c in second:
            c.rank = 2
        if len(best) > 1 or any(_overlap(b, s) for b in best for s in second):
            for c in best:
                c.not_separable = True
    return table


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_cell(cell: Cell, decimals: int) -> str:
    value = fmt(cell.value, decimals)
    if cell.rank == 1:
        value = f"**{value}**"
    elif cell.rank == 2:
        value = f"*{value}*"
    return value + ("†" if cell.not_separable else "") + interval_text(cell, decimals)


def to_markdown(table: Table, with_group: bool = True) -> str:
    """A pipe table: family and model columns, one column per (group, metric); marks as in the module doc."""
    head = ([table.group_header] if with_group else []) + [table.row_header]
    head += [f"{c.group} {c.label}".strip() for c in table.columns]
    align = ([":--"] if with_group else []) + [":--"] + ["--:"] * len(table.columns)
    lines = ["| " + " | ".join(_md_escape(h) for h in head) + " |", "|" + "|".join(align) + "|"]
    for row, cells in zip(table.rows, table.cells, strict=True):
        label = row.label + (f" ({', '.join(row.flags)})" if row.flags else "")
        parts = ([row.group] if with_group else []) + [label]
        parts += [markdown_cell(c, col.decimals) for c, col in zip(cells, table.columns, strict=True)]
        lines.append("| " + " | ".join(_md_escape(p) for p in parts) + " |")
    return "\n".join(lines)


def markdown_table(headers: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A plain pipe table of strings (``align``: one of l/r per column, default left then right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    marks = [":--" if a == "l" else "--:" for a in align]
    lines = ["| " + " | ".join(_md_escape(h) for h in headers) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(_md_escape(str(c)) for c in row) + " |" for row in rows]
    return "\n".join(lines)
