"""What a checkpoint costs: seconds to write ``resume.pt`` and ``best.pt`` of a model at the paper's settings.

    python -m pipeline.tools.bench_checkpoint --models dyglnet nnunet_resenc [--out DIR] [--repeats 5]

Each model is built as ``models.<name>`` of ``--params`` (default ``configs/paper.yaml``) builds it, with the
recipe's AdamW (its moments filled by one step on zero gradients), scheduler and gradient scaler; ``resume.pt`` is
written by ``engine.resume.save_resume`` exactly as a training writes it after an epoch, in both of its sizes:
when the epoch just trained is the best one (model, AdamW moments: about 3x the weights) and when an older epoch
is (its weights too: about 4x). ``best.pt`` is written by ``engine.checkpoint.save_best``. The files go to
``--out`` (default: a temporary folder in the current directory, i.e. on the workspace's disk) and are deleted;
the time is the median of ``--repeats`` writes, each including the fsync of the atomic write.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from core.cli import run


def _timed(write, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        write()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(name: str, params, folder: Path, repeats: int) -> dict:
    import torch

    from engine import resume as rs
    from engine.checkpoint import model_state, save_best
    from engine.factory import model_from_entry
    from engine.params import TrainConfig
    from engine.recipe import optimisation
    from engine.runtime import rng_state

    cfg = TrainConfig.from_params(params, data=str(folder), model=name, out=str(folder))
    model = model_from_entry(cfg.model, cfg.builder, cfg.model_kwargs)
    _, optimizer, scheduler, scaler = optimisation(model, cfg, 50, torch.device("cpu"), None)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()  # AdamW's moments exist from the first step on
    scheduler.step()
    log = [{"epoch": e, "seconds": 1.0} for e in range(1, 6)]
    progress = rs.RunState(epochs_done=5, log=log, best={"val_dice": 50.0, "epoch": 5}, best_weights=model_state(model))
    fingerprint = rs.run_fingerprint(cfg, 1, "fp16-amp")
    path = folder / "resume.pt"
    row = {"model": name, "parameters": sum(p.numel() for p in model.parameters())}
    for improved, label in ((True, "best is this epoch"), (False, "best is older")):
        row[label] = _timed(
            lambda improved=improved: rs.save_resume(
                path,
                progress,
                rs.TrainingObjects(model, optimizer, scheduler, scaler),
                improved=improved,
                rngs=rng_state(),
                cfg=cfg,
                fingerprint=fingerprint,
            ),
            repeats,
        )
        row[f"{label} MB"] = path.stat().st_size / 1e6
    row["best.pt"] = _timed(lambda: save_best(folder / "best.pt", progress.best_weights, cfg, progress.best), repeats)
    for f in folder.glob("*.pt"):
        f.unlink()
    return row


def main(argv: list[str] | None = None) -> int:
    prog = "python -m pipeline.tools.bench_checkpoint"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["dyglnet"], help="models: keys of --params")
    parser.add_argument("--params", default="configs/paper.yaml", help="the profile the models come from")
    parser.add_argument("--out", help="folder to write into (default: a temporary one in the current directory)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the figures here, with the machine (docs/benchmarks/)")
    args = parser.parse_args(argv)
    from tabulate import tabulate

    from engine.params import load_params

    params = load_params(Path(args.params))
    with tempfile.TemporaryDirectory(dir=args.out or ".", prefix=".bench-checkpoint-") as tmp:
        rows = [measure(name, params, Path(tmp), args.repeats) for name in args.models]
    table = [
        [
            r["model"],
            f"{r['parameters'] / 1e6:.2f} M",
            f"{r['best is this epoch MB']:.1f} MB: {r['best is this epoch']:.2f} s",
            f"{r['best is older MB']:.1f} MB: {r['best is older']:.2f} s",
            f"{r['best.pt']:.2f} s",
        ]
        for r in rows
    ]
    headers = ["model", "parameters", "resume.pt, best = this epoch", "resume.pt, best = older", "best.pt"]
    print(tabulate(table, headers=headers))
    if args.json:
        from pipeline.tools.results import header, write

        write(args.json, {**header("Checkpoint write times (seconds) and sizes (MB)", prog, argv), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
