"""Command-line conventions of every stage: a user error is one line on stderr and exit status 2.

Library code raises exceptions; only :func:`run` (called by each stage's ``__main__``) turns them into
exit codes. A traceback therefore always means a bug.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from core.errors import UserError


def run(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Call a stage's ``main(argv)``; user errors print ``error: ...`` and give 2, Ctrl-C gives 130."""
    try:
        return main(argv) or 0
    except SystemExit:  # argparse's --help and usage errors; checked first so --help imports nothing more
        raise
    except UserError as err:
        print(f"error: {err}{restore_hint()}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return 130


def restore_hint() -> str:
    """Under ``dvc repro`` or the grid (both set ``DVC_STAGE``), how to get back the outputs that were removed
    before the stage ran; empty otherwise."""
    stage = os.environ.get("DVC_STAGE")
    if not stage:
        return ""
    return f" [{stage}: if its outputs were removed before it ran, `dvc checkout {stage}` restores those in dvc.lock]"
