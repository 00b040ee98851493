"""Evaluate a checkpoint on a split of a prepared dataset with the paper's per-image metrics.

    python -m pipeline.evaluate --data data/prepared/synthetic --checkpoint runs/.../best.pt --out DIR
                                [--split test] [--batch-size 16] [--device auto] [--compile]

Writes ``per_image.csv`` (id, then every metric ``engine.metrics.image_metrics`` returns, in the units
the reports print, ``engine.metric_names.METRIC_UNITS``: every proportion in percent (the overlap metrics,
NSD, predicted and true foreground), HD95 in pixels), ``metrics.json`` (per metric: mean, std, 95% bootstrap
CI over images, in the same units; ``units`` names each unit; ``img_size``/``prepared_size`` the two sizes
below), ``timing.json``
(throughput of the forward pass) and ``pred/<id>.png`` (predicted masks at the prepared size, 0/255).
See ``engine.metrics`` for the definitions and the rules for empty masks.

Sizes: the model runs at the size it was trained at (the checkpoint's ``img_size``); the metrics are
computed against the prepared masks at the prepared size, so HD95 is in the prepared data's pixels
whatever the training size. When the two differ, the normalised images are resized bilinearly to the
training size, and the logits bilinearly back to the prepared size before thresholding; the log says so.

Inference runs under ``torch.inference_mode()`` on the fast path of ``engine.inference`` (BatchNorm
folded into convolutions where that leaves the output unchanged; ``torch.compile`` with ``--compile`` or
``evaluate.compile: true``). Defaults come from the ``evaluate:`` section of params.yaml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli import run
from core.errors import UserError
from engine.evaluation import evaluate, parse_evaluation_args, prepared_size, split_ids

__all__ = ["evaluate", "main", "prepared_size", "split_ids"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, type=Path, help="a prepared dataset folder")
    parser.add_argument("--checkpoint", required=True, type=Path, help="best.pt of a training run")
    parser.add_argument("--out", required=True, type=Path, help="results folder")
    args = parse_evaluation_args(parser, argv)
    # The checks that need no torch come first, so that a wrong path is reported at once.
    split_ids(args.data, args.split)
    if not args.checkpoint.is_file():
        raise UserError(f"--checkpoint {args.checkpoint}: no such file")
    evaluate(
        args.data,
        args.checkpoint,
        args.out,
        args.split,
        batch_size=args.batch_size,
        device_name=args.device,
        n_boot=args.bootstrap,
        save_predictions=not args.no_predictions,
        compile=args.compile,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
