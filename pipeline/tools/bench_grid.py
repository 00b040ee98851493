"""Benchmark: ``pipeline.grid`` (N jobs at once) against ``dvc repro`` on the same pipeline, from scratch.

    python -m pipeline.tools.bench_grid                     # the active params.yaml; the grid as `make repro` runs it
    python -m pipeline.tools.bench_grid --floor             # and a grid at one thread per job: the floor
    python -m pipeline.tools.bench_grid --jobs 2 --set train.epochs=1 --set 'models={unet: {}, unetpp: {}}'

Makes fresh copies of the working tree (the files git tracks or would track, without .venv, the DVC cache,
dvc.lock or any stage output), runs ``dvc repro`` in one and ``python -m pipeline.grid`` (what ``make repro``
runs; ``--jobs N``: ``make grid JOBS=N``) in the other, then ``dvc repro`` there for whatever the grid left to it
(grid+report), one after the other. It prints the machine (CPU model, bf16 or not, torch), both wall times and
their ratio, each training's estimate beside its time, whether ``dvc status`` is clean in each copy afterwards,
and how far the two runs' results are apart (checkpoint hashes from dvc.lock, every number of every
metrics.json). With ``--floor``, a third copy runs the grid with one thread per job and a job per core: the sum
of its jobs' times over the cores is the floor no schedule can beat. The copies stay under ``--workdir`` for
inspection (``--clean`` removes them).
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
from pipeline.tools.results import header, this_machine, write


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


def run_grid_copy(root: Path, grid_args: list[str], env: dict[str, str], dvc: str, label: str) -> dict[str, Any]:
    """``python -m pipeline.grid`` in a copy, then ``dvc repro`` there for what the grid left to it (excluded
    stages such as the report): their wall times, exit statuses, ``dvc status`` and the grid's summary.json."""
    cmd = [sys.executable, "-m", "pipeline.grid", "--progress-s", "60", "--summary-json", "grid_summary.json"]
    cmd += grid_args
    print(f"[{label}] {' '.join(cmd[1:])} in {root} ...", flush=True)
    load0 = os.getloadavg()[0]
    seconds, rc = timed(cmd, root, env, root / "bench_grid.log")
    rest, rest_rc = timed([dvc, "repro"], root, env, root / "bench_grid_rest.log") if rc == 0 else (0.0, None)
    load = (load0 + os.getloadavg()[0]) / 2
    try:
        summary = json.loads((root / "grid_summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = {}
    print(
        f"      {seconds:.1f} s (+ {rest:.1f} s of dvc repro for what it left), exit {rc}; load ~{load:.1f}", flush=True
    )
    return {
        "seconds": seconds + rest,
        "grid_seconds": seconds,
        "rest_seconds": rest,
        "rc": rc or rest_rc or 0,
        "status": dvc_status(root, dvc, env),
        "load": load,
        "runs": summary.get("runs", []),
    }


def idle_summary(root: Path) -> dict[str, Any]:
    """How long cores sat idle while the grid's jobs ran (:mod:`pipeline.tools.grid_timeline`), longest periods."""
    from pipeline.tools.grid_timeline import analyse

    try:
        found = analyse(root)
    except UserError as err:
        return {"error": str(err)}
    return {**found, "periods": found["periods"][:5]}


def job_times(runs: list[dict]) -> tuple[float, list[dict]]:
    """The sum of the jobs' wall seconds, and each training's time beside its estimate (from summary.json)."""
    total = sum(r.get("seconds") or 0.0 for r in runs if r.get("status") == "done")
    rows = [
        {
            "job": r["stages"][0],
            "estimate_s": r.get("estimate_seconds"),
            "train_s": r.get("train_seconds"),
            "where": r.get("where"),
        }
        for r in runs
        if r.get("estimate_seconds")
    ]
    return total, rows


def report(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(
        f"\nmachine: {m['cpu']} ({'bf16' if m['bf16'] else 'no bf16: fp32 unless amp is off anyway'}), "
        f"{m['cores']} cores, torch {m['torch']}" + (f", {m['gpu']}" if m.get("gpu") else "")
    )
    grid = result["grid"]
    if "repro" in result:
        repro = result["repro"]
        print(f"dvc repro:                      {repro['seconds']:8.1f} s   (exit {repro['rc']})")
    print(f"grid ({result['grid_args'] or 'default'}) + report: {grid['seconds']:8.1f} s   (exit {grid['rc']})")
    if "floor" in result:
        floor = result["floor"]
        print(
            f"floor (1-thread job times / {m['cores']}): {floor['floor_seconds']:8.1f} s   "
            f"(from a grid at one thread per job: {floor['seconds']:.1f} s)"
        )
    if "repro" in result:
        ratio = result["ratio"]
        print(
            f"ratio grid+report / repro:      {ratio:8.2f}   (target <= 0.85: {'met' if ratio <= 0.85 else 'NOT met'})"
        )
        print(f"dvc status after repro:  {'clean' if not repro['status'] else repro['status']}")
    print(f"dvc status after grid:   {'clean' if not grid['status'] else grid['status']}")
    idle = grid.get("idle") or {}
    if "idle_core_seconds" in idle:
        print(
            f"idle cores while the grid's jobs ran: {idle['idle_core_seconds']:.0f} core-seconds; the longest period "
            f"with a training running lasted {idle['longest_idle_with_a_training_running_epochs']:.2f} of its epochs"
        )
    for row in result["estimates"]:
        err = (row["estimate_s"] - row["train_s"]) / row["train_s"] if row["train_s"] else None
        print(
            f"  {row['job']:40s} estimate {row['estimate_s']:7.1f} s  train {row['train_s'] or 0:7.1f} s  "
            f"{'' if err is None else f'error {100 * err:+.0f} %'}  ({row['where']})"
        )
    if "compared" in result:
        c = result["compared"]
        print(
            f"checkpoints: {c['checkpoints_identical']} identical, {len(c['checkpoints_different'])} different"
            + (
                f" (largest weight difference {c['max_weight_difference_of_different']:.3g})"
                if c["max_weight_difference_of_different"] is not None
                else ""
            )
            + f"; metrics: {c['metric_values_compared']} values, largest difference {c['max_metric_difference']:.3g}"
            + (f" ({c['max_difference_at']})" if c["max_metric_difference"] else "")
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.bench_grid", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, help="the grid's jobs at once (default: the grid's own, as make repro)")
    parser.add_argument("--source", default=".", help="the working tree to copy (default: here)")
    parser.add_argument("--workdir", default="/tmp/bench_grid", help="where the copies go")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=YAML", help="params.yaml override")
    parser.add_argument("--repro-threads", type=int, help="OMP_NUM_THREADS for dvc repro (default: torch's own)")
    parser.add_argument("--grid-args", default="", help="more arguments for pipeline.grid, e.g. '--gpus none'")
    parser.add_argument("--skip-repro", action="store_true", help="only the grid (no ratio)")
    parser.add_argument("--floor", action="store_true", help="also a grid at one thread per job, all cores: the floor")
    parser.add_argument("--json", help="write the measurements here too")
    parser.add_argument("--clean", action="store_true", help="remove the copies afterwards")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    source = Path(args.source).resolve()
    if not (source / "dvc.yaml").exists():
        raise UserError(f"{source}: no dvc.yaml (run from the repository root or pass --source)")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    copies = {"grid": work / "grid", **({} if args.skip_repro else {"repro": work / "repro"})}
    copies.update({"floor": work / "floor"} if args.floor else {})
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("OMP_NUM_THREADS", None)
    dvc = str(bindir / "dvc")
    print(f"copying {source} (without outputs) to {', '.join(map(str, copies.values()))}", flush=True)
    for copy in copies.values():
        copy_tree(source, copy, args.set)
    grid_args = ([f"--jobs={args.jobs}"] if args.jobs else []) + args.grid_args.split()
    machine = this_machine()
    amp_off = any(item.replace(" ", "") in ("train.amp=false", "train.amp=False") for item in args.set)
    precision = "fp32" if amp_off or not machine["bf16"] else "bf16"
    title = f"make repro against dvc repro, default profile, {precision}: {machine['cpu']}"
    result: dict[str, Any] = header(title, "python -m pipeline.tools.bench_grid", argv, machine)
    result.update(precision=precision, overrides=args.set, grid_args=" ".join(grid_args))

    if "repro" in copies:
        repro_env = {**env, **({"OMP_NUM_THREADS": str(args.repro_threads)} if args.repro_threads else {})}
        print(f"[repro] dvc repro in {copies['repro']} ...", flush=True)
        load0 = os.getloadavg()[0]
        seconds, rc = timed([dvc, "repro"], copies["repro"], repro_env, copies["repro"] / "bench_repro.log")
        load = (load0 + os.getloadavg()[0]) / 2
        result["repro"] = {"seconds": seconds, "rc": rc, "status": dvc_status(copies["repro"], dvc, env), "load": load}
        print(f"      {seconds:.1f} s, exit {rc}; load average around {load:.1f}", flush=True)
    result["grid"] = run_grid_copy(copies["grid"], grid_args, env, dvc, "grid")
    result["grid"]["idle"] = idle_summary(copies["grid"])
    _, result["estimates"] = job_times(result["grid"]["runs"])
    if "floor" in copies:
        cores = os.cpu_count() or 1
        floor_args = [f"--jobs={cores}", "--threads-per-job=1", *args.grid_args.split()]
        result["floor"] = run_grid_copy(copies["floor"], floor_args, env, dvc, "floor")
        result["floor"]["floor_seconds"] = job_times(result["floor"]["runs"])[0] / cores
    if "repro" in result:
        result["ratio"] = result["grid"]["seconds"] / result["repro"]["seconds"]
        result["compared"] = compare(copies["repro"], copies["grid"])
    if max(r.get("load", 0.0) for r in (result.get("repro", {}), result["grid"])) > (os.cpu_count() or 1) + 1.0:
        print("      (other processes were using this machine's cores: the times are not comparable)")
    report(result)
    print(f"logs: {', '.join(str(c / 'bench_grid.log') for c in copies.values() if c.name != 'repro')}")
    if args.json:
        write(args.json, json.loads(json.dumps(result, default=str)))
    if args.clean:
        for copy in copies.values():
            shutil.rmtree(copy, ignore_errors=True)
    runs = [result[k] for k in ("repro", "grid", "floor") if k in result]
    return 0 if all(not r["status"] and r["rc"] == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(run(main))
