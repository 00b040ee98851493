"""What a benchmark tool writes with ``--json FILE``: its figures with the machine, the command and the date, so that
the documentation's benchmarks page (generated from ``docs/benchmarks/*.json``) can show each one with where it was
measured and how to measure it again."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from core.fsutil import atomic_write_text


def this_machine() -> dict[str, Any]:
    """CPU model, bf16 or not, GPU, torch, cores: what the figures depend on."""
    from pipeline.grid.estimate import machine

    return {**machine(), "cores": os.cpu_count()}


def header(
    title: str, prog: str, argv: list[str] | None, machine: dict[str, Any] | None = None, measured_now: bool = True
) -> dict[str, Any]:
    """The record's first keys: ``title``, ``command`` (as typed), ``date``, ``machine`` (with the load average when
    the tool started, when it measures now: other work on the machine slows what it measures)."""
    args = sys.argv[1:] if argv is None else argv
    return {
        "title": title,
        "command": " ".join([prog, *(shlex.quote(str(a)) for a in args)]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            **(machine or this_machine()),
            **({"load_average": round(os.getloadavg()[0], 1)} if measured_now else {}),
        },
    }


def write(path: str | os.PathLike, result: dict[str, Any]) -> None:
    """``result`` as JSON at ``path`` (atomically; folders created)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")  # key order kept: it is the table's column order
    print(f"wrote {path}")
