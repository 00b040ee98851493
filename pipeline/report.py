"""Report stage: the paper's tables and figures, from the pipeline's outputs only.

    python -m pipeline.report [--results results] [--runs runs] [--prepared data/prepared] [--out output/quick]
                              [--metrics metrics/quick.json]

Load -> build -> write. Reads the runs named by params.yaml (``datasets``, ``models``, ``seeds``):
``results/<D>/<M>/seed<S>/{metrics.json,per_image.csv,pred/}``, ``results/complexity/<M>.json``,
``runs/<D>/<M>/seed<S>/{train.json,log.csv}``, ``data/prepared/<D>/`` and the paper's numbers in
``reports/paper/``; writes into ``--out`` (``output/<profile>/`` in dvc.yaml): comparison, ablation and
complexity tables (``.md`` and ``.tex``), ``paper_vs_ours.md``, ``significance.md``, ``claims.md``, ``ranking.md``
and ``ranking.tex`` (the main models ranked per dataset), ``reproduction.md`` (this run against the
``metrics.json`` committed at ``report.compare_to``, read with git), ``bubble``, ``qualitative``, ``val_curves`` and the
ranking figures (``ranking_blob``, ``ranking_significance``, ``ranking_methods``, with two datasets or more
``ranking_heatmap``) as PNG and PDF, each with its caption, and ``figures.md`` embedding them with their captions;
with ``--metrics`` also a compact metrics file for ``dvc metrics show`` (with the rank stability per dataset).
Every file is built before the first is written, and each is written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli import run


def write_outputs(out: Path, files: dict[str, str | bytes]) -> list[Path]:
    """Write every file atomically into ``out``; returns the paths."""
    from core.fsutil import atomic_write_bytes

    written = []
    for name, content in files.items():
        path = out / name
        atomic_write_bytes(path, content if isinstance(content, bytes) else content.encode("utf-8"))
        written.append(path)
    return written


def refuse_unequal(params, inputs) -> None:
    """With ``report.fail_on_unequal``, a run whose recipe differs from the shared ``train:`` (B) stops the report."""
    from reports.inputs import ReportError

    if params.report.fail_on_unequal and inputs.recipe_diffs:
        runs = "; ".join(f"{m}: {', '.join(diff.values())}" for m, diff in inputs.recipe_diffs.items())
        raise ReportError(f"report.fail_on_unequal: runs trained with another recipe than train:: {runs}")


def write_reports(
    params,
    results: Path,
    runs: Path,
    prepared: Path,
    out: Path,
    *,
    root: Path | None = None,
    metrics: Path | None = None,
) -> list[Path]:
    """Load every input, build every report, then write them; returns the paths written."""
    from reports.assemble import build_reports, metrics_json
    from reports.inputs import load_inputs
    from reports.ranking_report import rank_models

    inputs = load_inputs(params, results, runs, prepared, root or Path.cwd())
    refuse_unequal(params, inputs)
    ranking = rank_models(inputs)
    files = build_reports(inputs, ranking)
    extra = metrics_json(inputs, ranking) if metrics is not None else None
    written = write_outputs(out, files)
    if extra is not None:
        written += write_outputs(metrics.parent, {metrics.name: extra})
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", default="results", help="evaluation and complexity outputs (default: results)")
    parser.add_argument("--runs", default="runs", help="training logs and train.json (default: runs)")
    parser.add_argument("--prepared", default="data/prepared", help="prepared datasets (default: data/prepared)")
    parser.add_argument("--out", default="output", help="folder for the reports (default: output)")
    parser.add_argument("--metrics", default=None, help="also write a compact metrics JSON here (for dvc metrics)")
    parser.add_argument("--params", default=None, help="params file (default: params.yaml)")
    args = parser.parse_args(argv)

    from engine.params import load_params

    params = load_params(args.params)
    written = write_reports(
        params,
        Path(args.results),
        Path(args.runs),
        Path(args.prepared),
        Path(args.out),
        metrics=Path(args.metrics) if args.metrics else None,
    )
    print(f"wrote {len(written)} report files to {args.out}/", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
