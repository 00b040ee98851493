"""Bootstrap rank stability at challenge size: seconds for the vectorised bootstrap of ``reports.ranking``.

    python -m pipeline.tools.bench_ranking [--tasks 7] [--algorithms 20] [--cases 137] [--bootstrap 1000]
                                           [--repeats 3] [--full]

Generated per-case values (a shared case difficulty plus per-algorithm offsets and noise); per task the
mean-then-rank ranks of ``--bootstrap`` case resamples, their rank frequencies, median ranks, 95% rank
intervals and Kendall's tau against the observed ranking (``bootstrap_ranks`` + ``summarise_bootstrap``), for
every task. Prints the median and the fastest of ``--repeats`` timings, the CPU model and the numpy version;
``--full`` also times the whole :func:`reports.ranking.analyse` (which adds the pairwise Wilcoxon tests).
The target is under 10 s for the default size.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from core.cli import run


def cpu_model() -> str:
    """The CPU model name (from /proc/cpuinfo on Linux; platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def generated_table(n_tasks: int, n_alg: int, n_cases: int, seed: int = 0):
    """A long table (task, algorithm, case, value) with a known order of the algorithms plus noise."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frames = []
    for t in range(n_tasks):
        difficulty = rng.normal(0.8, 0.08, (n_cases, 1))
        values = difficulty + np.linspace(0.02, 0, n_alg) + rng.normal(0, 0.03, (n_cases, n_alg))
        frame = pd.DataFrame(values, columns=[f"alg{a:02d}" for a in range(n_alg)])
        frame["case"] = [f"case{c:04d}" for c in range(n_cases)]
        frames.append(frame.melt(id_vars="case", var_name="algorithm", value_name="value").assign(task=f"task{t}"))
    return pd.concat(frames, ignore_index=True)


def time_bootstrap(matrices, n_boot: int, seed: int = 0) -> float:
    """Seconds for the bootstrap and its summaries over every task matrix."""
    from reports.ranking.analysis import bootstrap_ranks, mean_then_rank, summarise_bootstrap, task_rng

    start = time.perf_counter()
    for m in matrices:
        ranks = bootstrap_ranks(m.scores, n_boot, task_rng(seed, m.task))
        summarise_bootstrap(ranks, mean_then_rank(m.scores), seed)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.tools.bench_ranking", description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=7)
    ap.add_argument("--algorithms", type=int, default=20)
    ap.add_argument("--cases", type=int, default=137)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--full", action="store_true", help="also time the whole analyse() once")
    ap.add_argument("--json", help="also write the figures here, with the machine (docs/benchmarks/)")
    a = ap.parse_args(argv)
    for name, low in (("tasks", 1), ("algorithms", 2), ("cases", 1), ("bootstrap", 1), ("repeats", 1)):
        if getattr(a, name) < low:
            ap.error(f"argument --{name}: must be at least {low}, got {getattr(a, name)}")

    import numpy as np

    from reports.ranking import analyse
    from reports.ranking.analysis import task_matrices

    table = generated_table(a.tasks, a.algorithms, a.cases)
    matrices = task_matrices(table)
    times = [time_bootstrap(matrices, a.bootstrap) for _ in range(a.repeats)]
    size = f"{a.bootstrap} resamples x {a.algorithms} algorithms x {a.tasks} tasks x {a.cases} cases"
    print(
        f"bootstrap rank stability, {size}: median {statistics.median(times):.3f} s, "
        f"fastest {min(times):.3f} s of {a.repeats} runs"
    )
    rows = [
        {
            "measured": f"bootstrap rank stability ({size})",
            "median s": statistics.median(times),
            "fastest s": min(times),
            "runs": a.repeats,
        }
    ]
    if a.full:
        start = time.perf_counter()
        analyse(table, n_boot=a.bootstrap)
        seconds = time.perf_counter() - start
        print(f"whole analyse() (bootstrap, four rankings, pairwise Wilcoxon tests): {seconds:.3f} s")
        rows.append(
            {
                "measured": "whole analyse(): bootstrap, four rankings, pairwise Wilcoxon tests",
                "median s": seconds,
                "fastest s": seconds,
                "runs": 1,
            }
        )
    print(f"CPU: {cpu_model()}; numpy {np.__version__}")
    if a.json:
        from pipeline.tools.results import header, write

        title = "Ranking analysis (reports.ranking) on a generated challenge"
        write(a.json, {**header(title, "python -m pipeline.tools.bench_ranking", argv), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
