"""The repository's own import graph, read from the source with :mod:`ast` (nothing is imported).

The DVC pipeline's code fingerprints (``pipeline.fingerprint``) hash exactly the files a stage's command or a
model's builder can execute: :func:`module_sources` follows every first-party import, at any depth of a file
(deferred imports inside functions included), transitively.
"""

from __future__ import annotations

import ast
from pathlib import Path

from core.paths import FIRST_PARTY, REPO_ROOT


def module_file(module: str) -> Path | None:
    """The source file of a first-party module (``pkg/mod.py`` or ``pkg/__init__.py``), else None."""
    parts = module.split(".")
    if parts[0] not in FIRST_PARTY:
        return None
    base = REPO_ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports_of(path: Path) -> set[str]:
    """First-party modules that ``path`` imports (at any depth of the file), with their packages."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import mod`
    found = set()
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py too
            if module_file(".".join(parts[:i])) is not None:
                found.add(".".join(parts[:i]))
    return found


def module_sources(*modules: str) -> list[str]:
    """Repository-relative source files of ``modules`` and every first-party module they import, transitively."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # its packages' __init__.py run first
        path = module_file(module)
        if path is not None:
            todo.extend(_imports_of(path) - seen)
    files = {module_file(m) for m in seen}
    return sorted(str(f.relative_to(REPO_ROOT)) for f in files if f is not None)
