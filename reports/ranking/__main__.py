"""Rank the algorithms of a long results table, challengeR style.

    python -m reports.ranking CSV --task COL --algorithm COL --case COL --value COL [--smaller-better]
                              [--bootstrap N] [--seed S] [--na-value X] --out DIR

CSV holds one row per (task, algorithm, case, value). Writes into DIR: ``ranking.json``, ``ranking.md`` and the
PNG figures ``blob_<task>.png``, ``significance_<task>.png``, ``methods_<task>.png`` and, with two or more tasks,
``rank_heatmap.png``. Everything is computed before the first file is written; each file is written atomically.
A missing value is an error unless --na-value gives its replacement (e.g. the worst possible value).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.cli import run
from core.errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line through core.cli.run instead of argparse's usage block
        raise UserError(f"{self.prog}: {message}")


def read_table(path: Path, columns: tuple[str, str, str, str]):
    """The CSV as a DataFrame with the task, algorithm and case columns read as text."""
    import pandas as pd

    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        header = pd.read_csv(path, nrows=0).columns
        text_columns = {c: str for c in columns[:3] if c in header}
        return pd.read_csv(path, dtype=text_columns, keep_default_na=True)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: empty file, expected a CSV with a header row") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: not a readable CSV ({first})") from None


def build_files(args: argparse.Namespace) -> dict[str, bytes]:
    """Every output file of the command, in memory."""
    from reports.ranking import analyse, figures, png_bytes, render_markdown, to_json

    path = Path(args.csv)
    columns = (args.task, args.algorithm, args.case, args.value)
    table = read_table(path, columns)
    try:
        result = analyse(
            table,
            smaller_better=args.smaller_better,
            n_boot=args.bootstrap,
            seed=args.seed,
            na_value=args.na_value,
            columns=columns,
        )
    except UserError as err:
        raise UserError(f"{path}: {err}") from None
    files = {
        "ranking.json": (json.dumps(to_json(result), indent=2, allow_nan=False) + "\n").encode("utf-8"),
        "ranking.md": render_markdown(result, title=f"Ranking analysis of {path.name}").encode("utf-8"),
    }
    files.update({f"{stem}.png": png_bytes(fig) for stem, fig in figures(result).items()})
    return files


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m reports.ranking", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("csv", help="long table: one row per (task, algorithm, case, value)")
    for name in ("task", "algorithm", "case", "value"):
        parser.add_argument(f"--{name}", required=True, metavar="COL", help=f"the column holding the {name}")
    parser.add_argument("--smaller-better", action="store_true", help="smaller values are better (errors, distances)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="case resamples per task (1000)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="bootstrap seed (0)")
    parser.add_argument("--na-value", type=float, default=None, metavar="X", help="replacement for missing values")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    args = parser.parse_args(argv)

    from core.fsutil import atomic_write_bytes

    files = build_files(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    for name, content in files.items():
        atomic_write_bytes(out / name, content)
    print(f"wrote {len(files)} files to {out}/", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
