"""``python -m datasets``: the dataset adapters, and the commands that get a dataset ready for ``prepare``.

    python -m datasets [NAME ...]             the adapters (or the named ones) and the tree each expects
    python -m datasets list [NAME ...]        the same
    python -m datasets --licences             licence and citation of every dataset (as docs/reference/datasets.md)
    python -m datasets fetch NAME [--to DIR] [--url URL] [--sha256 HEX] [--from ARCHIVE ...]
    python -m datasets check NAME [--raw DIR]

``fetch`` downloads, verifies and unpacks a dataset that has a public URL, or verifies and unpacks an
archive you downloaded (``--from``); for a dataset behind a login or a form it prints where to get it
and exits 0 (nothing is wrong, nothing was fetched). ``check`` prints one table (pairs against the
documented count, unreadable files, size mismatches, mask values, duplicates, image sizes) and exits 2
with one line per kind of problem.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import UserError
from datasets.registry import adapter_names, get_adapter

COMMANDS = ("list", "fetch", "check")


def _list(names: list[str]) -> int:
    adapters = [get_adapter(name) for name in names] or [get_adapter(name) for name in adapter_names()]
    for adapter in adapters:
        print(f"{adapter.name} ({adapter.display_name}, split {adapter.split}, masks: {adapter.mask_kind})")
        print("    " + adapter.layout.replace("\n", "\n    "))
        print()
    return 0


def licence_table() -> str:
    """Markdown table: dataset, licence, who states it, citation, where to get it."""
    from tabulate import tabulate

    from datasets.catalog import SOURCES

    rows = [
        (s.name, s.title, s.licence, s.licence_source, s.citation, s.homepage) for s in SOURCES.values() if s.citation
    ]
    headers = ["name", "dataset", "licence", "as stated by", "citation", "source"]
    return tabulate(rows, headers=headers, tablefmt="github")


def _fetch(argv: list[str]) -> int:
    from datasets.fetch import DOWNLOADS, RECORD_FILE, fetch

    ap = argparse.ArgumentParser(prog="python -m datasets fetch", description="Download, verify and unpack a dataset.")
    ap.add_argument("name", metavar="NAME", help="dataset adapter name (python -m datasets list)")
    ap.add_argument("--to", type=Path, help="folder to unpack into (default: data/raw/NAME, the paper profile's raw:)")
    ap.add_argument("--url", help="a mirror: the archive's URL, or for several archives the folder URL ending in '/'")
    ap.add_argument(
        "--sha256",
        action="append",
        default=[],
        metavar="HEX",
        help="expected sha256 (overrides the pinned or recorded one); ARCHIVE=HEX for a dataset of several archives",
    )
    ap.add_argument(
        "--from",
        dest="from_archives",
        action="append",
        default=[],
        metavar="ARCHIVE",
        help="verify and unpack an archive you downloaded (zip, tar or rar; repeat for several)",
    )
    ap.add_argument("--downloads", type=Path, help=f"where archives are downloaded to (default: {DOWNLOADS}/NAME)")
    ap.add_argument("--checksums", type=Path, default=RECORD_FILE, help="the record of first-download checksums")
    a = ap.parse_args(argv)
    fetch(
        a.name,
        a.to,
        url=a.url,
        sha256=a.sha256,
        from_archives=a.from_archives,
        downloads=a.downloads,
        record_file=a.checksums,
    )
    return 0


def _check(argv: list[str]) -> int:
    from tqdm import tqdm

    from datasets.check import check

    ap = argparse.ArgumentParser(
        prog="python -m datasets check", description="Integrity check of a downloaded dataset."
    )
    ap.add_argument("name", metavar="NAME", help="dataset adapter name")
    ap.add_argument("--raw", type=Path, help="the dataset as downloaded (default: data/raw/NAME)")
    ap.add_argument("--workers", type=int, default=None, help="decoding threads (default: min(4, CPUs))")
    a = ap.parse_args(argv)
    get_adapter(a.name)
    raw = a.raw if a.raw is not None else Path("data/raw") / a.name
    if not raw.is_dir():
        raise UserError(f"--raw {raw}: no such directory (python -m datasets fetch {a.name} puts it there)")

    def bar(results, total):
        return tqdm(results, total=total, desc=f"check {a.name}", unit="pair", disable=not sys.stderr.isatty())

    report = check(a.name, raw, workers=a.workers, wrap=bar)
    print(report.table())
    for line in report.problem_lines():
        print(line, file=sys.stderr)
    return 2 if report.problems else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "fetch":
        return _fetch(argv[1:])
    if argv and argv[0] == "check":
        return _check(argv[1:])
    if argv and argv[0] == "list":
        argv = argv[1:]
    parser = argparse.ArgumentParser(
        prog="python -m datasets",
        description="The dataset adapters and the tree each expects; subcommands: "
        "list [NAME ...], fetch NAME, check NAME (python -m datasets fetch --help).",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="adapters to show (default: all)")
    parser.add_argument("--licences", action="store_true", help="licence and citation of every dataset")
    args = parser.parse_args(argv)
    if args.licences:
        print(licence_table())
        return 0
    return _list(args.names)


if __name__ == "__main__":
    from core.cli import run

    raise SystemExit(run(main))
