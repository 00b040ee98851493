"""``python -m pipeline.grid``: see :mod:`pipeline.grid`."""

from core.cli import run
from pipeline.grid.coordinator import main

raise SystemExit(run(main))
