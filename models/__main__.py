"""``python -m models [--json] [--size 224] [PATTERN ...]``: every registered model's size and cost.

``python -m models --deps NAME``: the repository source files that building NAME executes (its module and
its first-party imports, transitively), one per line; the DVC pipeline's per-model dependencies.

``python -m models fetch-weights [--params params.yaml] [--dry-run]``: download into the Hugging Face hub
cache (HF_HOME / HF_HUB_CACHE) every backbone's Hub weights that the params file's ``models:`` entries with
``model_kwargs.pretrained: true`` load, each once, so that training can then run with HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import argparse
import json
import sys

from models.files import model_sources
from models.registry import ModelArgumentError, UnknownModelError, create_model, list_models, model_info


def fetch_weights(argv: list[str]) -> int:
    """``python -m models fetch-weights``: see the module docstring; ``--dry-run`` lists and fetches nothing."""
    import yaml

    from models.hub import hub_cache_dir, hub_offline
    from models.pretrained import entry_hub_weights, fetch_hub_weights

    parser = argparse.ArgumentParser(
        prog="python -m models fetch-weights",
        description="Download the Hub weights that the models of a params file start from (pretrained: true).",
    )
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="list each id, revision and cache folder; fetch nothing")
    args = parser.parse_args(argv)
    try:
        with open(args.params, encoding="utf-8") as fh:
            models = (yaml.safe_load(fh) or {}).get("models") or {}
        plan: dict[str, tuple] = {}  # id -> (HubWeights, entry keys)
        for key, entry in models.items():
            entry = entry or {}
            try:
                hubs = entry_hub_weights(entry.get("model") or key, entry.get("model_kwargs") or {})
            except (ModelArgumentError, UnknownModelError) as err:
                raise ModelArgumentError(f"{args.params}: models.{key}: {err}") from err
            for hub in hubs.values():
                plan.setdefault(hub.id, (hub, []))[1].append(key)
    except (OSError, yaml.YAMLError, AttributeError, ModelArgumentError) as err:
        parser.exit(2, f"error: {err}\n")

    offline = " (HF_HUB_OFFLINE=1: nothing can be downloaded)" if hub_offline() else ""
    print(f"Hugging Face hub cache: {hub_cache_dir()}{offline}")
    if not plan:
        print(f"no models: entry of {args.params} has model_kwargs.pretrained: true; nothing to fetch")
        return 0
    missing = []
    for hub, keys in plan.values():
        cached = hub.cached_files() is not None
        if not cached:
            missing.append((hub, keys))
        print(
            f"{hub.repo_id}  revision {hub.revision_label}  {'cached' if cached else 'to fetch'}  "
            f"{hub.cache_folder()}  [{hub.library}; {', '.join(keys)}]"
        )
    if args.dry_run:
        return 0
    if missing and hub_offline():
        parser.exit(
            2,
            f"error: {len(missing)} of these weights are not in the hub cache and HF_HUB_OFFLINE=1 forbids "
            "downloading; run fetch-weights without HF_HUB_OFFLINE where the Hub is reachable\n",
        )
    for hub, keys in missing:
        try:
            fetch_hub_weights(hub, f"models.{keys[0]}")
        except ModelArgumentError as err:
            parser.exit(2, f"error: {err}\n")
        print(f"fetched {hub.id}", flush=True)
    print(
        f"{len(missing)} fetched, {len(plan) - len(missing)} already cached: jobs that use this cache can run "
        "with HF_HUB_OFFLINE=1"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["fetch-weights"]:
        return fetch_weights(argv[1:])
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
