"""Get the datasets of a profile ready: fetch what can be fetched, check every one, say what is still missing.

    python -m pipeline.tools.data [--params configs/paper.yaml] [--no-fetch]      (make data)

For each entry of the params file's ``datasets:`` (adapter name -> ``raw:`` folder):
- a dataset with a public URL (``python -m datasets fetch``) is fetched into its ``raw:`` folder when the
  folder is missing or empty, or was written by an earlier fetch (which then verifies it and does nothing);
  a folder you filled by hand is only checked;
- every folder that exists is checked (``python -m datasets check``: each pair decoded once);
- one table gives each dataset's state, and below it the exact next step for each that is not ready
  (the manual route of a dataset behind a login or a form, the command that lists its problems).

Exit status 0 when every dataset is in place and passes its check, 2 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tabulate import tabulate

from core.cli import run
from datasets.catalog import SOURCES, manual_route
from datasets.check import check
from datasets.fetch import MARKER, FetchError, fetch
from engine.params import load_params


def _fetch_allowed(raw: Path) -> bool:
    """Missing, empty, or written by fetch: fetching cannot replace anything of yours."""
    return not raw.exists() or (raw.is_dir() and (not any(raw.iterdir()) or (raw / MARKER).is_file()))


def prepare_datasets(params: str | Path | None, do_fetch: bool = True) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(table rows: dataset, folder, state; next steps) for every dataset of the params file."""
    rows, steps = [], []
    for name, entry in load_params(params).datasets.items():
        raw = Path(entry.raw)
        src = SOURCES.get(name)
        fetched = ""
        if do_fetch and src is not None and src.fetchable and _fetch_allowed(raw):
            try:
                fetched = fetch(name, raw, say=print) + "; "
            except FetchError as e:
                rows.append((name, str(raw), "fetch failed"))
                steps.append(f"{name}: {e}")
                continue
        if not raw.is_dir() or not any(raw.iterdir()):
            rows.append((name, str(raw), "missing"))
            if src is not None and src.fetchable:
                steps.append(f"{name}: python -m datasets fetch {name} --to {raw}")
            elif src is not None and src.manual:
                steps.append(f"{name}: {manual_route(src, str(raw))}")
            else:
                steps.append(f"{name}: put the data in {raw} (python -m datasets {name} shows the tree it reads)")
            continue
        report = check(name, raw)
        if report.problems:
            kinds = ", ".join(p.kind for p in report.problems)
            rows.append((name, str(raw), f"{fetched}{report.pairs} pairs; problems: {kinds}"))
            steps.append(f"{name}: python -m datasets check {name} --raw {raw}  (lists the problems)")
        else:
            rows.append((name, str(raw), f"{fetched}ready: {report.pairs} pairs"))
    return rows, steps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.tools.data", description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default=None, help="params file whose datasets: to get (default: params.yaml)")
    ap.add_argument("--no-fetch", action="store_true", help="only check; download nothing")
    a = ap.parse_args(argv)
    rows, steps = prepare_datasets(a.params, do_fetch=not a.no_fetch)
    print(tabulate(rows, headers=["dataset", "folder", "state"], tablefmt="github"))
    if steps:
        print("\nnext steps:", file=sys.stderr)
        for step in steps:
            print(f"  {step}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
