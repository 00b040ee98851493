"""The results recorded in git: each run's ``results/<D>/<M>/seed<S>/metrics.json`` as committed at a revision
(``report.compare_to`` of params.yaml, default ``HEAD``; the evaluation commits these files, ``cache: false``).

Read with ``git`` in the repository root, every file in one ``git cat-file --batch`` call. Never raises: where
git, the repository, the revision or the results folder is not available, :class:`Recorded` says why in one line
(``problem``); a run without a file at the revision is None. ``commit`` names the record by the last commit, up to
the revision, that changed one of those files (``git log -1 REV -- files``), not by the revision itself, so that
commits that change nothing of the record do not change the report.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

COMMIT_CHARS = 10  # characters of the commit id printed (fixed: git's own abbreviation grows with the history)


@dataclass
class Recorded:
    rev: str  # the revision asked for
    commit: str = ""  # the last commit up to ``rev`` that changed a compared file ("" when none or unknown)
    metrics: dict[tuple[str, str, int], dict | None] = field(default_factory=dict)  # run -> metrics.json at rev
    problem: str = ""  # why nothing was compared, in one line ("" when the files could be looked up)


def _git(args: list[str], cwd: Path, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, check=True, timeout=60).stdout


def parse_batch(output: bytes, count: int) -> list[bytes | None]:
    """The contents of ``count`` objects from ``git cat-file --batch`` output, None for a missing one."""
    found, at = [], 0
    for _ in range(count):
        end = output.index(b"\n", at)
        header = output[at:end].split()
        at = end + 1
        if len(header) != 3 or header[1] != b"blob":  # "<name> missing", "<name> ambiguous" or not a file
            found.append(None)
            continue
        size = int(header[2])
        found.append(output[at : at + size])
        at += size + 1
    return found


def _json(content: bytes | None) -> dict | None:
    try:
        data = json.loads(content) if content is not None else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def load_recorded(root: Path, results: Path, runs: list[tuple[str, str, int]], rev: str) -> Recorded:
    """``metrics.json`` of each run in ``runs`` (dataset, model, seed) as recorded at ``rev`` (module docstring)."""
    out = Recorded(rev)
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], root).decode().strip())
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        out.problem = "not a git checkout, or git is not installed"
        return out
    try:
        sha = _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], top).decode().strip()
    except (OSError, subprocess.SubprocessError):
        out.problem = f"revision {rev!r} not found in this repository"
        return out
    try:
        folder = (root / results).resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        out.problem = f"{results} lies outside the git repository"
        return out
    paths = [f"{folder}/{d}/{m}/seed{s}/metrics.json".removeprefix("./") for d, m, s in runs]
    try:
        batch = _git(["cat-file", "--batch"], top, "".join(f"{sha}:{p}\n" for p in paths).encode())
        contents = parse_batch(batch, len(paths))
        last = _git(["log", "-1", "--format=%H", sha, "--", *paths], top).decode().strip()
    except (OSError, subprocess.SubprocessError, ValueError, UnicodeDecodeError) as err:
        out.problem = f"git could not read the recorded files ({type(err).__name__})"
        return out
    out.metrics = {run: _json(c) for run, c in zip(runs, contents, strict=True)}
    out.commit = last[:COMMIT_CHARS]
    return out
