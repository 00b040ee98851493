"""Where params.yaml is and how a profile of ``configs/`` extends another: the files, before the schema
(:mod:`engine.params`) validates what they hold."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from core.errors import UserError
from core.paths import REPO_ROOT


class ParamsError(UserError):
    """params.yaml is missing, not YAML, or has a wrong key, type or value."""


def params_path(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``params.yaml`` in the working directory, else the repository's."""
    if path is not None:
        return Path(path)
    here = Path.cwd() / "params.yaml"
    return here if here.exists() else REPO_ROOT / "params.yaml"


def merge_profile(parent: dict, child: dict) -> dict:
    """``child`` over ``parent``: mappings merge key by key; a child's null removes the key; a child's empty
    mapping, list or scalar replaces the parent's value."""
    merged = dict(parent)
    for key, value in child.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and value and isinstance(merged.get(key), dict):
            merged[key] = merge_profile(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml_mapping(path: Path) -> dict:
    """A YAML file's top-level mapping ({} for an empty file); :class:`ParamsError` naming the file otherwise."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ParamsError(f"{path}: not found (run from the repository root, or pass --params)") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ParamsError(f"{path}: unreadable: {err}") from err
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from err
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top, got {type(raw).__name__}")
    return raw


def resolve_profile(path: str | os.PathLike, _seen: tuple[Path, ...] = ()) -> dict:
    """A params file with its ``extends: NAME`` chain resolved (``NAME.yaml`` beside it, :func:`merge_profile`).
    A file that extends another is a profile: its ``profile:`` is its file name."""
    path = Path(path)
    raw = read_yaml_mapping(path)
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str) or not parent:
        raise ParamsError(f"{path}: extends: expected a profile name, got {parent!r}")
    parent_path = path.with_name(f"{parent}.yaml")
    if parent_path.resolve() in _seen or parent_path.resolve() == path.resolve():
        raise ParamsError(f"{path}: extends: {parent} extends it back (a cycle)")
    if not parent_path.is_file():
        raise ParamsError(f"{path}: extends: no profile {parent_path}")
    merged = merge_profile(resolve_profile(parent_path, (*_seen, path.resolve())), raw)
    return {**merged, "profile": path.stem}
