"""Where the numbers of a report come from: code, pipeline state, data splits, recipe, software, device.

Collected once per report run (:func:`collect`) and printed in every Markdown report
(:func:`markdown_block`) and as a comment at the top of every .tex file (:func:`lines`):

- ``commit``: ``git rev-parse HEAD``, and ``dirty`` when tracked or untracked, non-ignored files differ
  from it, not counting the pipeline's own outputs (``output/``, ``results/``, ``runs/``, ``data/``,
  ``dvc.lock``, ``metrics.json``, ``code_fingerprints.yaml``), which change with every run;
- ``pipeline``: sha256 of ``dvc.lock``'s stage entries except ``report`` (canonical JSON: sorted keys, no
  spaces), read as a file, not declared as a dependency (the report's own entry would make it stale); of
  the ``fingerprint`` stage only its output counts (the code fingerprints every stage reads): its
  dependencies are whole source folders, so a comment in a module no stage runs would change the digest
  of an unchanged pipeline;
- ``splits``: sha256 of ``data/prepared/<dataset>/split.json`` per dataset;
- ``profile`` and ``recipe``: params.yaml's profile name, epochs, image size, batch size and learning
  rate (per-model overrides listed), and the optimiser steps of each run (``train.json`` key ``steps``);
- ``software``: versions of python, torch, timm and segmentation-models-pytorch from the installed
  package metadata (nothing is imported);
- ``device``: ``device_name`` of the runs' ``train.json``; where none records it, this machine's CPU
  from ``/proc/cpuinfo``, labelled as the report machine.

Nothing time-dependent is recorded, so the same inputs give byte-identical reports.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from collections import Counter, defaultdict
from importlib import metadata
from pathlib import Path

import yaml

GENERATED_PATHS = ("output", "results", "runs", "data", "dvc.lock", "metrics.json", "code_fingerprints.yaml")
PACKAGES = ("torch", "timm", "segmentation-models-pytorch")


def git_state(root: Path) -> str:
    """``<commit>`` plus `` (clean)`` / `` (dirty: N paths)``, or why it is unknown."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=20
        ).stdout.strip()
        excludes = [f":(exclude){p}" for p in GENERATED_PATHS]
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", ".", *excludes],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout, or git is not installed)"
    changed = [line for line in status.splitlines() if line.strip()]
    return f"{commit} (dirty: {len(changed)} changed paths)" if changed else f"{commit} (clean)"


FINGERPRINT_STAGE = "fingerprint"  # dvc.yaml's stage that writes code_fingerprints.yaml


def lock_digest(lock: Path) -> str:
    """sha256 of the canonical JSON of every dvc.lock stage entry except ``report`` (and the fingerprint
    stage's folder dependencies)."""
    if not lock.is_file():
        return f"no {lock.name} (stages not run through DVC)"
    stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    kept = {k: v for k, v in stages.items() if k != "report"}
    if isinstance(kept.get(FINGERPRINT_STAGE), dict):
        kept[FINGERPRINT_STAGE] = {k: v for k, v in kept[FINGERPRINT_STAGE].items() if k != "deps"}
    canonical = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return f"sha256 {hashlib.sha256(canonical.encode('utf-8')).hexdigest()} ({len(kept)} stages, report excluded)"


def file_digest(path: Path) -> str:
    return f"sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}" if path.is_file() else "missing"


def versions() -> str:
    parts = [f"python {platform.python_version()}"]
    for name in PACKAGES:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} not installed")
    return ", ".join(parts)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def recipe_text(params, models: list[str]) -> str:
    t = params.train
    text = f"epochs {t.epochs}, image size {t.img_size}, batch {t.batch_size}, lr {t.lr:g}"
    overrides = []
    for m in models:
        r = params.model_spec(m).recipe
        diff = [
            f"{k} {getattr(r, a):g}"
            for k, a in (("epochs", "epochs"), ("image size", "img_size"), ("batch", "batch_size"), ("lr", "lr"))
            if getattr(r, a) != getattr(t, a)
        ]
        if diff:
            overrides.append(f"{m}: {', '.join(diff)}")
    return text + (f"; overrides: {'; '.join(overrides)}" if overrides else "")


def steps_text(train_json: dict[tuple[str, str, int], dict | None]) -> str:
    """Optimiser steps per dataset, grouping the models that share a count."""
    per_dataset: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    missing = 0
    for (d, m, s), info in sorted(train_json.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        steps = (info or {}).get("steps")
        if steps is None:
            missing += 1
            continue
        per_dataset[d][str(steps)].append(m if len({k[2] for k in train_json}) == 1 else f"{m}/seed{s}")
    parts = []
    for d, counts in per_dataset.items():
        ordered = sorted(counts.items(), key=lambda kv: -len(kv[1]))
        chunks = [
            f"{n} ({len(ms)} runs)" if i == 0 and len(ms) > 3 else f"{n} ({', '.join(ms)})"
            for i, (n, ms) in enumerate(ordered)
        ]
        parts.append(f"{d}: {'; '.join(chunks)}")
    if missing:
        parts.append(f"not recorded for {missing} of {len(train_json)} runs (train.json has no `steps`)")
    return "; ".join(parts) if parts else "not recorded"


def device_text(train_json: dict[tuple[str, str, int], dict | None]) -> str:
    names = Counter((info or {}).get("device_name") for info in train_json.values())
    recorded = {k: v for k, v in names.items() if k}
    if not recorded:
        return f"{cpu_name()} (the report machine's CPU from /proc/cpuinfo; the runs' train.json record no device_name)"
    text = ", ".join(f"{name} ({n} runs)" for name, n in sorted(recorded.items()))
    if None in names:
        text += f"; not recorded for {names[None]} runs"
    return text


def collect(root: Path, params, datasets, models, prepared: Path, train_json) -> dict[str, str]:
    """Every provenance field as text (see the module docstring)."""
    return {
        "commit": git_state(root),
        "pipeline (dvc.lock)": lock_digest(root / "dvc.lock"),
        "splits": "; ".join(f"{d}: {file_digest(prepared / d / 'split.json')}" for d in datasets),
        "profile": params.profile,
        "recipe": recipe_text(params, models),
        "optimiser steps": steps_text(train_json),
        "software": versions(),
        "device": device_text(train_json),
    }


def markdown_block(prov: dict[str, str]) -> str:
    lines = ["## Provenance", ""]
    lines += [f"- {key}: {value}" for key, value in prov.items()]
    return "\n".join(lines) + "\n"


def lines(prov: dict[str, str]) -> list[str]:
    """Provenance as comment lines for a .tex file (no line breaks inside a field)."""
    return [f"provenance {key}: {' '.join(str(value).split())}" for key, value in prov.items()]
