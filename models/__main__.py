"""``python -m models [--json] [--size 224] [PATTERN ...]``: every registered model's size and cost.

``python -m models --deps NAME``: the repository source files that building NAME executes (its module and
its first-party imports, transitively), one per line; the DVC pipeline's per-model dependencies.
"""

from __future__ import annotations

import argparse
import json
import sys

from models.registry import UnknownModelError, create_model, list_models, model_info
from models.sources import model_sources


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__)
    parser.add_argument("patterns", nargs="*", default=["*"], help="shell-style name patterns (default: all)")
    parser.add_argument("--json", action="store_true", help="print only a JSON list to stdout")
    parser.add_argument("--size", type=int, default=224, help="input size for the FLOP count (default 224)")
    parser.add_argument("--deps", action="store_true", help="print the source files of each named model and exit")
    args = parser.parse_args(argv)
    if args.deps:
        try:
            files = sorted({f for name in args.patterns for f in model_sources(name)})
        except UnknownModelError as err:
            parser.exit(2, f"error: {err}\n")
        print("\n".join(files))
        return 0

    from models.complexity import count_params, fvcore_gflops  # torch: only when models are built

    names = sorted({n for p in args.patterns for n in list_models(p)})
    if not names:
        parser.error(f"no registered model matches {args.patterns}")
    rows = []
    if not args.json:
        print(f"{'model':<28} {'family':<12} {'params':>11} {'GFLOPs':>9}  (fvcore, 1x3x{args.size}x{args.size})")
    for name in names:
        info = model_info(name)
        size = info.fixed_input_size or args.size
        model = create_model(name)
        rows.append(
            {
                "name": name,
                "display_name": info.display_name,
                "family": info.family,
                "params": count_params(model),
                "gflops": round(fvcore_gflops(model, size), 4),
                "input_size": size,
            }
        )
        if not args.json:
            row = rows[-1]
            print(f"{name:<28} {info.family:<12} {row['params'] / 1e6:>9.3f} M {row['gflops']:>9.3f}", flush=True)
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
