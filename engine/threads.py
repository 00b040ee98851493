"""A training's CPU thread budget, which may change while it runs.

``python -m pipeline.grid`` starts each CPU job with ``OMP_NUM_THREADS`` set to its share of the cores and, when a
job ends and none waits, lends the freed cores to the jobs still running: it writes each job's budget (a number of
threads) to the file that ``DYGLBENCH_THREADS_FILE`` names in the job's environment. :class:`ThreadBudget` reads
that file at each epoch boundary, and only there, and applies it with ``torch.set_num_threads``. Without the
variable (a training run by hand or by ``dvc repro``) it does nothing.

On the CPU, the number of intra-op threads can change how a convolution splits its sums, so a run whose budget
changed may differ in the last bits from one that kept its threads. Measured on a 2-core AMD EPYC, torch 2.14, 4
epochs at 32 px, one thread throughout against one then two from epoch 2: UNet's weights differed by up to 7e-6 in
fp32 and 5e-3 with bf16 autocast (the logged training losses agreed to 5 decimals), as they do between one and
two threads from the start; a tiny DyGLNet came out bit-identical. The first epoch is identical (the change waits
for the epoch boundary) and the same thread schedule gives the same weights bit for bit. The run records every change
(``threads`` in train.json: the epoch each budget started from) so that the result says how it was made.
"""

from __future__ import annotations

import os
from pathlib import Path

THREADS_FILE_ENV = "DYGLBENCH_THREADS_FILE"


def read_budget(path: str | os.PathLike) -> int | None:
    """The number in a budget file; None when it is absent, unreadable or not a positive integer."""
    try:
        value = int(Path(path).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    return value if value > 0 else None


class ThreadBudget:
    """Follows the budget file of ``DYGLBENCH_THREADS_FILE`` (or ``path``) between epochs."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        path = path or os.environ.get(THREADS_FILE_ENV)
        self.path = Path(path) if path else None
        self.changes: list[dict[str, int]] = []  # {"from_epoch": 1-based epoch, "threads": n}

    def follow(self, epoch: int) -> int | None:
        """Before epoch ``epoch`` (0-based): apply the budget when it differs from torch's thread count. Returns
        the new count when it changed, else None."""
        if self.path is None:
            return None
        import torch

        current = torch.get_num_threads()
        if not self.changes:
            self.changes.append({"from_epoch": epoch + 1, "threads": current})
        budget = read_budget(self.path)
        if budget is None or budget == current:
            return None
        torch.set_num_threads(budget)
        self.changes.append({"from_epoch": epoch + 1, "threads": budget})
        print(f"threads: {current} -> {budget} from epoch {epoch + 1} (budget of {self.path.name})", flush=True)
        return budget

    def record(self) -> dict[str, list[dict[str, int]]]:
        """For train.json: ``{"threads": [...]}`` when the run followed a budget file, else ``{}``."""
        return {"threads": list(self.changes)} if self.changes else {}
