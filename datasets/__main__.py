"""``python -m datasets [NAME ...]``: the dataset adapters with the on-disk tree each expects."""

from __future__ import annotations

import argparse

from datasets.registry import adapter_names, get_adapter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datasets", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help="adapters to show (default: all)")
    args = parser.parse_args(argv)
    adapters = [get_adapter(name) for name in args.names] or [get_adapter(name) for name in adapter_names()]
    for adapter in adapters:
        print(f"{adapter.name} ({adapter.display_name}, split {adapter.split}, masks: {adapter.mask_kind})")
        print("    " + adapter.layout.replace("\n", "\n    "))
        print()
    return 0


if __name__ == "__main__":
    from core.cli import run

    raise SystemExit(run(main))
