"""Cross-dataset transfer: evaluate a checkpoint trained on one dataset on another dataset's test split.

    python -m pipeline.transfer --source data/prepared/kvasir --target data/prepared/cvc
        --checkpoint runs/kvasir/dyglnet/seed42/best.pt --out results/transfer/kvasir-cvc/dyglnet/seed42
        [--split test] [--batch-size 16] [--device auto] [--compile] [--no-predictions]

Nothing is retrained: the model of ``--checkpoint`` (trained on ``--source``) is scored on ``--target``
exactly as ``python -m pipeline.evaluate`` scores it on its own dataset (the same function, the same
``evaluate:`` settings of params.yaml), and the outputs are the same files: ``per_image.csv``,
``metrics.json`` (with ``source`` and ``target`` added: the folders' names), ``timing.json``, ``pred/*.png``.

Both datasets must be prepared at the same size, so that the transferred scores compare with the
in-domain ones (HD95 is in the prepared data's pixels); a mismatch stops the stage with one line.
``--source`` is read for that check only (the header of its ``images.npy``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli import run
from core.errors import UserError
from engine.evaluation import evaluate, parse_evaluation_args, prepared_size, split_ids


def check_pair(source: Path, target: Path, split: str) -> int:
    """The common prepared size of ``source`` and ``target``; UserError when they are one folder or differ."""
    if source.resolve() == target.resolve():
        raise UserError(f"--source and --target are both {source}: for a model's own dataset use pipeline.evaluate")
    split_ids(source, "train")  # a prepared folder (the split the checkpoint was trained on)
    split_ids(target, split)
    s, t = prepared_size(source), prepared_size(target)
    if s != t:
        raise UserError(
            f"--target {target} is prepared at {t} px but --source {source} at {s} px: prepare both at the "
            "same size (prepare.size) so that the transferred scores compare with the in-domain ones"
        )
    return s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.transfer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", required=True, type=Path, help="the prepared dataset the checkpoint was trained on")
    parser.add_argument("--target", required=True, type=Path, help="the prepared dataset to test on")
    parser.add_argument("--checkpoint", required=True, type=Path, help="best.pt of a training run on --source")
    parser.add_argument("--out", required=True, type=Path, help="results folder")
    args = parse_evaluation_args(parser, argv, split_help="split of --target")
    check_pair(args.source, args.target, args.split)
    if not args.checkpoint.is_file():
        raise UserError(f"--checkpoint {args.checkpoint}: no such file")
    evaluate(
        args.target,
        args.checkpoint,
        args.out,
        args.split,
        batch_size=args.batch_size,
        device_name=args.device,
        n_boot=args.bootstrap,
        save_predictions=not args.no_predictions,
        compile=args.compile,
        extra={"source": args.source.name, "target": args.target.name},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
