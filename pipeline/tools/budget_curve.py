"""How many optimiser steps a profile needs: read the log.csv of runs trained for a long budget and print, per
model, the validation Dice after each epoch, the step at which it came within ``--margin`` points of its final
best, and how much it still gained over the last quarter of the run.

    python -m pipeline.tools.budget_curve RUN_DIR [RUN_DIR ...] [--margin 0.5] [--json FILE]

Each RUN_DIR is a training's --out folder (log.csv and train.json). The `real-cpu` profile's budget was set with it
(docs/tutorials/real-dataset-cpu.md; its figures are docs/benchmarks/real-cpu-budget.json, from ``--json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from core.cli import run
from core.errors import UserError
from pipeline.tools.results import header, write

PROG = "python -m pipeline.tools.budget_curve"


def curve(folder: Path) -> tuple[list[float], int]:
    """(validation Dice after each epoch, optimiser steps per epoch) of one run folder."""
    try:
        log = pd.read_csv(folder / "log.csv")
        record = json.loads((folder / "train.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise UserError(f"{folder}: not a finished run (log.csv and train.json): {err}") from err
    values = pd.to_numeric(log["val_dice"], errors="coerce").dropna().tolist()
    if not values:
        raise UserError(f"{folder / 'log.csv'}: no validation Dice (a run without a validation split)")
    return values, int(record["steps"]) // max(1, int(record["epochs"]))


def summary(values: list[float], per_epoch: int, margin: float) -> dict:
    """Where a curve came within ``margin`` of its final best, and its gain over the last quarter."""
    best = max(values)
    reached = next(i for i in range(len(values)) if max(values[: i + 1]) >= best - margin) + 1
    quarter = max(1, len(values) // 4)
    before = max(values[:-quarter]) if len(values) > quarter else float("nan")
    return {
        "steps": len(values) * per_epoch,
        "best": best,
        "within_margin_at_step": reached * per_epoch,
        "gain_last_quarter": max(values[-quarter:]) - before,
        "last_quarter_steps": quarter * per_epoch,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="training run folders (log.csv, train.json)")
    parser.add_argument("--margin", type=float, default=0.5, help="Dice points from the final best (default 0.5)")
    parser.add_argument("--json", help="also write the figures here, with the runs' machine (docs/benchmarks/)")
    args = parser.parse_args(argv)
    rows, records = [], []
    for folder in args.runs:
        values, per_epoch = curve(folder)
        s = summary(values, per_epoch, args.margin)
        record = json.loads((folder / "train.json").read_text(encoding="utf-8"))
        records.append(record)
        rows.append(
            {
                "run": folder.name,
                "model": record.get("model", folder.name),
                "steps": s["steps"],
                "best val Dice": round(s["best"], 2),
                f"within {args.margin:g} of it at step": s["within_margin_at_step"],
                f"gain over the last {s['last_quarter_steps']} steps": round(s["gain_last_quarter"], 2),
                "seconds": record.get("seconds"),
            }
        )
        print(
            f"{folder.name}: {s['steps']} steps, best {s['best']:.2f}; within {args.margin:g} of it at step "
            f"{s['within_margin_at_step']}; gain over the last {s['last_quarter_steps']} steps "
            f"{s['gain_last_quarter']:+.2f}"
        )
        print("  val Dice by epoch: " + " ".join(f"{v:.1f}" for v in values))
    if args.json:
        write(
            args.json,
            {
                **header(
                    "Optimiser-step budget: validation Dice against steps",
                    PROG,
                    argv,
                    runs_machine(records),
                    measured_now=False,
                ),
                "rows": rows,
            },
        )
    return 0


def runs_machine(records: list[dict]) -> dict:
    """The machine the runs trained on, from their train.json (CPU or GPU name, precision); torch and cores are
    this environment's."""
    from pipeline.tools.results import this_machine

    here = this_machine()
    names = sorted({r.get("device_name", "?") for r in records})
    precisions = sorted({r.get("precision", "?") for r in records})
    on_gpu = any(str(r.get("device", "")).startswith("cuda") for r in records)
    return {
        "cpu": here["cpu"] if on_gpu else ", ".join(names),
        "bf16": precisions == ["bf16-amp"],
        "gpu": ", ".join(names) if on_gpu else None,
        "torch": here["torch"],
        "cores": here["cores"],
        "precision": ", ".join(precisions),
    }


if __name__ == "__main__":
    raise SystemExit(run(main))
