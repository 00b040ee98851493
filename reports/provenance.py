"""Where the numbers of a report come from: code, pipeline state, data splits, recipe, software, device.

Collected once per report run (:func:`collect`) and printed in every Markdown report
(:func:`markdown_block`) and as a comment at the top of every .tex file (:func:`lines`):

- ``commit``: ``git rev-parse HEAD``, and ``dirty`` when tracked or untracked, non-ignored files differ
  from it, not counting the pipeline's own outputs (``output/``, ``results/``, ``runs/``, ``data/``,
  ``dvc.lock``, ``metrics.json``, ``code_fingerprints.yaml``), which change with every run; the first
  ``DIRTY_SHOWN`` changed paths are named (then "and N more");
- ``pipeline``: sha256 of ``dvc.lock``'s entries of the current stages except ``report`` (canonical JSON:
  sorted keys, no spaces), read as a file, not declared as a dependency (the report's own entry would make
  it stale). The current stages are those ``dvc.yaml`` defines for the run's params (``foreach`` and
  ``matrix`` expanded as DVC names them, :func:`stage_names`); dvc.lock keeps entries of stages no longer
  defined (a model or dataset dropped from params.yaml), which are left out and counted. Of the
  ``fingerprint`` stage only its output counts (the code fingerprints every stage reads): its
  dependencies are whole source folders, so a comment in a module no stage runs would change the digest
  of an unchanged pipeline;
- ``splits``: sha256 of ``data/prepared/<dataset>/split.json`` per dataset;
- ``profile`` and ``recipe``: params.yaml's profile name, epochs, image size, batch size and learning
  rate (per-model overrides listed), and the optimiser steps of each run (``train.json`` key ``steps``);
- ``initialisation``: which models trained from scratch and which backbone of which model started from which
  pretrained weights: the ``weights`` record of the runs' ``train.json`` (Hub id, library, snapshot commit,
  file and sha256; or a local file and its sha256), else, for runs that predate that record, what params.yaml
  asks for (:func:`models.pretrained.weights_source`, which imports no torch), labelled as such;
- ``software``: versions of python, torch, timm and segmentation-models-pytorch from the installed
  package metadata (nothing is imported);
- ``device``: ``device_name`` of the runs' ``train.json``; where none records it, this machine's CPU
  from ``/proc/cpuinfo``, labelled as the report machine;
- ``data licences``: each dataset's licence and the paper to cite (`datasets.catalog.terms`).

Nothing time-dependent is recorded, so the same inputs give byte-identical reports.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import platform
import subprocess
from collections import Counter, defaultdict
from importlib import metadata
from pathlib import Path

import yaml

from datasets.catalog import terms
from models.pretrained import weights_source

GENERATED_PATHS = ("output", "results", "runs", "data", "dvc.lock", "metrics", "code_fingerprints.yaml")
PACKAGES = ("torch", "timm", "segmentation-models-pytorch")


DIRTY_SHOWN = 5  # changed paths named in the commit line


def changed_paths(porcelain_z: str) -> list[str]:
    """Paths of ``git status --porcelain -z`` output (a rename or copy gives its new path)."""
    entries = porcelain_z.split("\0")
    paths, i = [], 0
    while i < len(entries):
        entry = entries[i]
        if len(entry) > 3:
            paths.append(entry[3:])
            if entry[0] in "RC":
                i += 1  # the next entry is the old path
        i += 1
    return paths


def git_state(root: Path) -> str:
    """``<commit>`` plus `` (clean)`` / `` (dirty: N changed paths: a, b, ... and M more)``, or why it is unknown."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=20
        ).stdout.strip()
        excludes = [f":(exclude){p}" for p in GENERATED_PATHS]
        status = subprocess.run(
            ["git", "status", "--porcelain", "-z", "--", ".", *excludes],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout, or git is not installed)"
    changed = changed_paths(status)
    if not changed:
        return f"{commit} (clean)"
    shown = ", ".join(changed[:DIRTY_SHOWN])
    more = f" and {len(changed) - DIRTY_SHOWN} more" if len(changed) > DIRTY_SHOWN else ""
    return f"{commit} (dirty: {len(changed)} changed paths: {shown}{more})"


FINGERPRINT_STAGE = "fingerprint"  # dvc.yaml's stage that writes code_fingerprints.yaml


def _resolve(value, values: dict):
    """A ``foreach``/``matrix`` value: a literal list or mapping, or ``${a.b}`` looked up in ``values``."""
    if isinstance(value, str):
        text = value.strip()
        if not (text.startswith("${") and text.endswith("}")):
            return None
        found = values
        for part in text[2:-1].strip().split("."):
            if not isinstance(found, dict) or part not in found:
                return None
            found = found[part]
        return found
    return value if isinstance(value, list | dict) else None


def _dvc_str(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def stage_names(dvc_yaml: Path, values: dict) -> set[str] | None:
    """Names of the stages ``dvc_yaml`` defines for the params ``values``, expanded as DVC names them
    (``name@key`` for ``foreach``, ``name@a-b-c`` for ``matrix``); None when the file is missing or
    unreadable or a ``foreach``/``matrix`` value cannot be resolved here."""
    try:
        stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    names: set[str] = set()
    for name, stage in stages.items():
        stage = stage if isinstance(stage, dict) else {}
        if "foreach" in stage:
            items = _resolve(stage["foreach"], values)
            if items is None:
                return None
            if isinstance(items, dict):
                keys = [_dvc_str(k) for k in items]
            elif any(isinstance(v, list | dict) for v in items):
                keys = [str(i) for i in range(len(items))]
            else:
                keys = [_dvc_str(v) for v in items]
            names.update(f"{name}@{k}" for k in keys)
        elif "matrix" in stage:
            axes = []
            for key, value in (stage["matrix"] or {}).items():
                items = _resolve(value, values)
                if items is None:
                    return None
                # as DVC: a mapping iterates over its keys; a composite item is named <key><index>
                axes.append([f"{key}{i}" if isinstance(v, list | dict) else _dvc_str(v) for i, v in enumerate(items)])
            names.update(f"{name}@{'-'.join(combo)}" for combo in itertools.product(*axes))
        else:
            names.add(name)
    return names


def lock_digest(lock: Path, current: set[str] | None = None) -> str:
    """sha256 of the canonical JSON of the dvc.lock entries of the ``current`` stages (every entry when None)
    except ``report`` (and the fingerprint stage's folder dependencies)."""
    if not lock.is_file():
        return f"no {lock.name} (stages not run through DVC)"
    stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    kept = {k: v for k, v in stages.items() if k != "report" and (current is None or k in current)}
    stale = sum(1 for k in stages if k != "report" and k not in kept)
    if isinstance(kept.get(FINGERPRINT_STAGE), dict):
        kept[FINGERPRINT_STAGE] = {k: v for k, v in kept[FINGERPRINT_STAGE].items() if k != "deps"}
    canonical = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    text = f"sha256 {hashlib.sha256(canonical.encode('utf-8')).hexdigest()} ({len(kept)} stages, report excluded"
    if current is None:
        return text + "; dvc.yaml not resolved, so every entry counts)"
    return text + (f"; {stale} entries of stages no longer in dvc.yaml left out)" if stale else ")")


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
    """The shared ``train:`` recipe and every per-model override of it (any key a ``models:`` entry sets)."""
    t = params.train
    budget = f"{t.steps} optimiser steps" if t.steps is not None else f"{t.epochs} epochs"
    text = f"{budget}, image size {t.img_size}, batch {t.batch_size}, lr {t.lr:g}"
    overrides = []
    for m in models:
        entry = params.models.get(m)
        changed = entry.overrides if entry is not None else {}
        if changed:
            overrides.append(f"{m}: " + ", ".join(f"{k}={v}" for k, v in sorted(changed.items())))
    return text + f"; per-model overrides: {'; '.join(overrides) if overrides else 'none'}"


def selection_text(train_json: dict[tuple[str, str, int], dict | None]) -> str:
    """The checkpoint each dataset's runs kept: the best validation Dice, or the last epoch (no validation split)."""
    words = {"best_val_dice": "best validation Dice", "last": "last epoch (no validation split)"}
    per_dataset: dict[str, set[str]] = defaultdict(set)
    for (d, _, _), info in train_json.items():
        per_dataset[d].add(words.get((info or {}).get("selection"), "not recorded"))
    return "; ".join(f"{d}: {', '.join(sorted(rules))}" for d, rules in sorted(per_dataset.items())) or "not recorded"


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


def _record_text(weights: dict) -> str:
    """One run's ``weights`` record as text: ``backbone <- id (library, snapshot, file sha256)`` per backbone."""
    parts = []
    for backbone, r in sorted(weights.items()):
        r = r if isinstance(r, dict) else {}
        if r.get("source") == "hub":
            detail = f"{r.get('library')}, revision {r.get('revision')}, snapshot {r.get('commit')}, {r.get('file')}"
            parts.append(f"{backbone} <- {r.get('id')} ({detail}, sha256 {r.get('sha256')})")
        else:
            parts.append(f"{backbone} <- {r.get('path')} (sha256 {r.get('sha256')})")
    return "; ".join(parts) if parts else "scratch"


def _declared_text(spec) -> str:
    """What params.yaml asks a model to start from (for runs whose train.json has no ``weights``)."""
    kwargs = spec.model_kwargs
    if kwargs.get("pretrained") is True and str(kwargs.get("encoder", "")).startswith("tu-"):
        return f"encoder <- timm's ImageNet weights of {kwargs['encoder'][3:]} (resolved by timm at training)"
    try:
        source = weights_source(spec.builder, kwargs)
    except ValueError as err:  # the build refuses these arguments (the train stage said so too)
        return f"refused: {err}"
    if source is None:
        return "scratch"
    named = {**source.get("ids", {}), **source.get("files", {})}
    return "; ".join(f"{backbone} <- {where}" for backbone, where in sorted(named.items()))


def weights_text(params, models: list[str], train_json: dict[tuple[str, str, int], dict | None]) -> str:
    """Which models trained from scratch, and what each backbone of the others started from (module doc)."""
    unrecorded = " (as params.yaml asks; train.json records no weights)"
    texts: dict[str, Counter] = {m: Counter() for m in models}
    for (_, m, _), info in train_json.items():
        if m not in texts:
            continue
        weights = (info or {}).get("weights")
        if isinstance(weights, dict):
            texts[m][_record_text(weights)] += 1
        else:
            texts[m][_declared_text(params.model_spec(m)) + unrecorded] += 1
    scratch = {"scratch": [], "scratch" + unrecorded: []}
    parts = []
    for m in models:
        found = texts[m]
        if len(found) == 1 and next(iter(found)) in scratch:
            scratch[next(iter(found))].append(m)
        elif len(found) == 1:
            parts.append(f"{m}: {next(iter(found))}")
        elif found:
            parts.append(f"{m}: " + "; ".join(f"{t} ({n} runs)" for t, n in sorted(found.items())))
    head = [f"from scratch{key[7:]}: {', '.join(ms)}" for key, ms in scratch.items() if ms]
    return "; ".join(head + parts) if head or parts else "not recorded"


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
        "pipeline (dvc.lock)": lock_digest(root / "dvc.lock", stage_names(root / "dvc.yaml", params.model_dump())),
        "splits": "; ".join(f"{d}: {file_digest(prepared / d / 'split.json')}" for d in datasets),
        "profile": params.profile,
        "recipe": recipe_text(params, models),
        "optimiser steps": steps_text(train_json),
        "model selection": selection_text(train_json),
        "initialisation": weights_text(params, models, train_json),
        "software": versions(),
        "device": device_text(train_json),
        "data licences": "; ".join(terms(d) for d in datasets),
    }


def markdown_block(prov: dict[str, str]) -> str:
    lines = ["## Provenance", ""]
    lines += [f"- {key}: {value}" for key, value in prov.items()]
    return "\n".join(lines) + "\n"


def lines(prov: dict[str, str]) -> list[str]:
    """Provenance as comment lines for a .tex file (no line breaks inside a field)."""
    return [f"provenance {key}: {' '.join(str(value).split())}" for key, value in prov.items()]
