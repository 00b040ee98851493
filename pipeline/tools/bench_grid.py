"""Benchmark: ``pipeline.grid`` (N jobs at once) against ``dvc repro`` on the same pipeline, from scratch.

    python -m pipeline.tools.bench_grid --jobs 2                   # the active params.yaml of this working tree
    python -m pipeline.tools.bench_grid --jobs 2 --set train.epochs=1 --set 'models={unet: {}, unetpp: {}}'

Makes two fresh copies of the working tree (the files git tracks or would track, without .venv, the DVC
cache, dvc.lock or any stage output), runs ``dvc repro`` in one and ``python -m pipeline.grid --jobs N``
(what ``make grid JOBS=N`` runs) in the other, one after the other, and prints both wall times, their
ratio, whether ``dvc status`` is clean in each copy afterwards, and how far the two runs' results are
apart (checkpoint hashes from dvc.lock, every number of every metrics.json). The copies stay under
``--workdir`` for inspection (``--clean`` removes them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from core.cli import run
from core.errors import UserError


def copy_tree(source: Path, dest: Path, overrides: list[str]) -> None:
    """``source``'s working tree without outputs into ``dest``, as a git + DVC project of its own."""
    files = subprocess.run(
        ["git", "-C", str(source), "ls-files", "-z", "-co", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    if dest.exists():
        shutil.rmtree(dest)
    for rel in filter(None, files):
        src = source / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    params_file = dest / "params.yaml"
    params = yaml.safe_load(params_file.read_text(encoding="utf-8"))
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=1")
        key, _, value = item.partition("=")
        node = params
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    if overrides:
        params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    (dest / "dvc.lock").unlink(missing_ok=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost"}
    env.update(GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@localhost")
    subprocess.run(["git", "init", "-q"], cwd=dest, env=env, check=True)
    remove_outputs(dest)
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "benchmark copy"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True)


def remove_outputs(root: Path) -> None:
    """Delete every output of every stage DVC lists (committed metrics and reports included)."""
    from pipeline.grid.dvc_adapter import output_paths

    for path in output_paths(root):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def timed(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        rc = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
    return time.perf_counter() - t0, rc


def dvc_status(root: Path, dvc: str, env: dict[str, str]) -> dict:
    out = subprocess.run([dvc, "status", "--json"], cwd=root, env=env, capture_output=True, text=True, check=False)
    try:
        return json.loads(out.stdout or "{}")
    except ValueError:
        return {"dvc status": out.stdout + out.stderr}


def numbers(obj: Any, prefix: str = "") -> dict[str, float]:
    """Every number in a JSON document, by its dotted path."""
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in numbers(val, f"{prefix}{key}.").items()}
    if isinstance(obj, list):
        return {k: v for i, val in enumerate(obj) for k, v in numbers(val, f"{prefix}{i}.").items()}
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return {prefix.rstrip("."): float(obj)}
    return {}


def checkpoint_hashes(root: Path) -> dict[str, str]:
    """md5 of every cached ``*.pt`` output recorded in dvc.lock."""
    lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8"))
    found = {}
    for stage in lock.get("stages", {}).values():
        for out in stage.get("outs", []):
            if str(out.get("path", "")).endswith(".pt") and "md5" in out:
                found[out["path"]] = out["md5"]
    return found


def weight_difference(fa: Path, fb: Path) -> float:
    """Largest absolute difference between the tensors of two checkpoints (their ``model`` entry when
    they hold more than weights, e.g. a training log with timings)."""
    import torch

    a, b = (torch.load(f, map_location="cpu", weights_only=True) for f in (fa, fb))
    a, b = (x.get("model", x) if isinstance(x, dict) else x for x in (a, b))
    if set(a) != set(b):
        return math.inf
    worst = 0.0
    for key, ta in a.items():
        if torch.is_tensor(ta):
            tb = b[key]
            if ta.shape != tb.shape:
                return math.inf
            if ta.numel():
                worst = max(worst, (ta.double() - tb.double()).abs().max().item())
    return worst


def compare(a: Path, b: Path) -> dict[str, Any]:
    """How far the results of two copies are apart."""
    ha, hb = checkpoint_hashes(a), checkpoint_hashes(b)
    same_pt = sorted(p for p in ha if hb.get(p) == ha[p])
    diff_pt = sorted(p for p in ha if p in hb and hb[p] != ha[p])
    weights = [weight_difference(a / p, b / p) for p in diff_pt if (a / p).exists() and (b / p).exists()]
    worst, where, compared = 0.0, None, 0
    for fa in sorted((a / "results").rglob("metrics.json")):
        fb = b / fa.relative_to(a)
        if not fb.exists():
            continue
        na = numbers(json.loads(fa.read_text(encoding="utf-8")))
        nb = numbers(json.loads(fb.read_text(encoding="utf-8")))
        for key in na.keys() & nb.keys():
            compared += 1
            if math.isnan(na[key]) and math.isnan(nb[key]):
                continue
            d = abs(na[key] - nb[key])
            if d > worst or (math.isnan(d) and where is None):
                worst, where = d, f"{fa.relative_to(a)}:{key}"
    return {
        "checkpoints_identical": len(same_pt),
        "checkpoints_different": diff_pt,
        "max_weight_difference_of_different": max(weights) if weights else None,
        "metric_values_compared": compared,
        "max_metric_difference": worst,
        "max_difference_at": where,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.bench_grid", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="the grid's jobs at once (default 2)")
    parser.add_argument("--source", default=".", help="the working tree to copy (default: here)")
    parser.add_argument("--workdir", default="/tmp/bench_grid", help="where the two copies go")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=YAML", help="params.yaml override")
    parser.add_argument("--repro-threads", type=int, help="OMP_NUM_THREADS for dvc repro (default: torch's own)")
    parser.add_argument("--grid-args", default="", help="more arguments for pipeline.grid, e.g. '--gpus none'")
    parser.add_argument("--skip-repro", action="store_true", help="only the grid (no ratio)")
    parser.add_argument("--json", help="write the measurements here too")
    parser.add_argument("--clean", action="store_true", help="remove the copies afterwards")
    args = parser.parse_args(argv)

    source = Path(args.source).resolve()
    if not (source / "dvc.yaml").exists():
        raise UserError(f"{source}: no dvc.yaml (run from the repository root or pass --source)")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    a, b = work / "repro", work / "grid"
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("OMP_NUM_THREADS", None)
    dvc = str(bindir / "dvc")
    print(f"copying {source} (without outputs) to {a} and {b}", flush=True)
    copy_tree(source, a, args.set)
    copy_tree(source, b, args.set)
    result: dict[str, Any] = {"jobs": args.jobs, "cores": os.cpu_count(), "overrides": args.set}

    if not args.skip_repro:
        repro_env = dict(env)
        if args.repro_threads:
            repro_env["OMP_NUM_THREADS"] = str(args.repro_threads)
        print(f"[1/2] dvc repro in {a} ...", flush=True)
        load0 = os.getloadavg()[0]
        t_repro, rc = timed([dvc, "repro"], a, repro_env, a / "bench_repro.log")
        load = (load0 + os.getloadavg()[0]) / 2
        result.update(repro_seconds=t_repro, repro_rc=rc, repro_status=dvc_status(a, dvc, env), repro_load=load)
        print(f"      {t_repro:.1f} s, exit {rc}; load average around {load:.1f}", flush=True)

    grid_cmd = [sys.executable, "-m", "pipeline.grid", "--jobs", str(args.jobs), "--progress-s", "60"]
    grid_cmd += args.grid_args.split()
    print(f"[2/2] {' '.join(grid_cmd[1:])} in {b} ...", flush=True)
    load0 = os.getloadavg()[0]
    t_grid, rc = timed(grid_cmd, b, env, b / "bench_grid.log")
    load = (load0 + os.getloadavg()[0]) / 2
    result.update(grid_seconds=t_grid, grid_rc=rc, grid_status=dvc_status(b, dvc, env), grid_load=load)
    print(f"      {t_grid:.1f} s, exit {rc}; load average around {load:.1f}", flush=True)
    if max(load0, load) > (os.cpu_count() or 1) + 1.0:
        print("      (other processes were using this machine's cores: the times are not comparable)")

    print()
    if not args.skip_repro:
        ratio = t_grid / result["repro_seconds"]
        result.update(ratio=ratio, **compare(a, b))
        print(f"dvc repro:               {result['repro_seconds']:8.1f} s   (exit {result['repro_rc']})")
        print(f"pipeline.grid --jobs {args.jobs}: {t_grid:8.1f} s   (exit {rc})")
        print(f"ratio grid / repro:      {ratio:8.2f}   (target <= 0.75: {'met' if ratio <= 0.75 else 'NOT met'})")
        print(f"dvc status after repro:  {'clean' if not result['repro_status'] else result['repro_status']}")
    print(f"dvc status after grid:   {'clean' if not result['grid_status'] else result['grid_status']}")
    if not args.skip_repro:
        print(
            f"checkpoints: {result['checkpoints_identical']} identical, "
            f"{len(result['checkpoints_different'])} different"
            + (
                f" (largest weight difference among those {result['max_weight_difference_of_different']:.3g})"
                if result["max_weight_difference_of_different"] is not None
                else ""
            )
            + "; metrics: "
            f"{result['metric_values_compared']} values, largest difference {result['max_metric_difference']:.3g}"
            + (f" ({result['max_difference_at']})" if result["max_metric_difference"] else "")
        )
    print(f"logs: {a / 'bench_repro.log'}, {b / 'bench_grid.log'}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    if args.clean:
        shutil.rmtree(a, ignore_errors=True)
        shutil.rmtree(b, ignore_errors=True)
    clean = not result["grid_status"] and (args.skip_repro or not result["repro_status"])
    return 0 if clean and rc == 0 and result.get("repro_rc", 0) == 0 else 1


if __name__ == "__main__":
    raise SystemExit(run(main))
