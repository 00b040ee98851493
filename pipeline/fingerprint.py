"""Fingerprints of the code each stage and each model runs, for DVC to read as params.

    python -m pipeline.fingerprint [--out code_fingerprints.yaml]

``dvc.yaml`` cannot list a different set of source files per model, so this stage computes them from the
code instead (:func:`models.files.model_sources`: a model's module and every first-party module it imports,
transitively; :func:`core.imports.module_sources` for a stage's entry module) and writes one short
hash per stage, per ``models:`` entry and per dataset adapter. ``train@D-M-S`` reads ``stages.train`` and
``models.M`` as params, so editing ``baselines/unet.py`` changes only ``models.unet`` and reruns only UNet's
stages; ``prepare@NAME`` reads ``adapters.NAME``. ``python -m models --deps NAME`` prints the files behind a
model's hash.

What is hashed is behaviour, not bytes (:func:`source_digest`): a Python file counts by its syntax tree with the
docstrings dropped, so a comment, a docstring, blank lines or a reformat (``ruff format``) change no fingerprint
and rerun nothing, while any change to code that runs changes exactly the fingerprints of the stages and models
that import it. The tree is written out by :func:`canonical_tree` rather than :func:`ast.dump`, whose text
changes between Python versions (3.13 leaves out empty fields), so a fingerprint is the same on every supported
Python. Two costs of this choice: a docstring that code reads at run time (an argparse description taken from
``__doc__``) changes the help text without a rerun, and a change inside a string is a change. Other files (the
weight files below) keep content hashes.
A model entry that starts from pretrained weights (:func:`models.pretrained.weights_source`: Hub ids, with the
revision where the library pins one, and ``pretrained_file`` paths) also hashes that source and the contents of
its local files, so switching an entry's initialisation, a library upgrade that pins another Hub revision or
a replaced weight file retrains the models that start from it (and no other); the stage depends on
``weights/``, where those files belong, so DVC notices the replacement. An entry that trains from scratch
keeps the code-only hash.

``architectures.KEY`` is what ``complexity@KEY`` reads instead: the hash of the model's code, its builder and its
architecture arguments (``model_kwargs`` without the weight arguments, :func:`models.pretrained.architecture_kwargs`).
Parameters, FLOPs and latency do not depend on the weights or on the recipe (epochs, lr, ...), so neither a new
weight file nor a recipe override reruns the measurement, and a latency is not measured again on whatever machine
happens to run the pipeline next.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
from pathlib import Path

import yaml

from core.cli import run
from core.errors import UserError
from core.fsutil import atomic_write_text
from core.imports import module_sources
from core.paths import REPO_ROOT
from datasets.registry import ADAPTER_PACKAGE, adapter_file, adapter_names
from engine.params import load_params, params_path
from models.files import model_sources
from models.pretrained import architecture_kwargs, weights_source

# The module each stage's command runs (`python -m <module>`).
STAGE_MODULES = {
    "synthesize": "datasets.synthetic",
    "prepare": "pipeline.prepare",
    "prepare_test_only": "pipeline.prepare",
    "train": "pipeline.train",
    "evaluate": "pipeline.evaluate",
    "transfer": "pipeline.transfer",
    "complexity": "pipeline.complexity",
    "report": "pipeline.report",
}


def canonical_tree(node) -> str:
    """A version-stable text of a syntax tree: node types and their non-empty fields, no positions."""
    if isinstance(node, ast.AST):
        fields = []
        for name in node._fields:
            value = getattr(node, name, None)
            if value is None or (isinstance(value, list) and not value):
                continue  # fields newer Pythons add (type_params, ...) are empty in code that does not use them
            fields.append(f"{name}={canonical_tree(value)}")
        return f"{type(node).__name__}({','.join(fields)})"
    if isinstance(node, list):
        return "[" + ",".join(canonical_tree(item) for item in node) + "]"
    return repr(node)


def _is_string_statement(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def strip_docstrings(tree: ast.AST) -> ast.AST:
    """``tree`` without its string statements (in place): the docstrings of its module, classes and functions,
    and attribute docstrings (a string under a field, which pydantic reads as the field's description: the
    params reference is generated from them, so rewording one reruns nothing)."""
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            body = getattr(node, name, None)
            if isinstance(body, list) and any(_is_string_statement(s) for s in body):
                kept = [s for s in body if not _is_string_statement(s)]
                setattr(node, name, kept or ([ast.Pass()] if name == "body" else []))
    return tree


def source_digest(path: Path) -> bytes:
    """What a source file contributes to a fingerprint: a Python file's syntax tree without string statements
    (comments and layout never reach it), any other file's bytes."""
    data = path.read_bytes()
    if path.suffix != ".py":
        return data
    tree = strip_docstrings(ast.parse(data, filename=str(path)))
    return canonical_tree(tree).encode()


def files_digest(files: list[str]) -> str:
    """A short hash of the names and the behaviour (:func:`source_digest`) of repository files."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + source_digest(REPO_ROOT / name) + b"\0")
    return digest.hexdigest()[:16]


def adapter_files() -> set[str]:
    """The dataset adapters' own files: each has a fingerprint of its own (``adapters.NAME``), which only its
    ``prepare@NAME`` stage reads."""
    return {str(adapter_file(name).relative_to(REPO_ROOT)) for name in adapter_names()}


def stage_sources(stage: str) -> list[str]:
    """Repository source files that a stage's command imports (statically, at any depth). For the ``prepare``
    stages: their entry and everything the adapters import, but not the adapters' own files (they import no
    other adapter)."""
    if STAGE_MODULES[stage] != "pipeline.prepare":
        return module_sources(STAGE_MODULES[stage])
    adapters = [f"{ADAPTER_PACKAGE}.{name}" for name in adapter_names()]
    return sorted(set(module_sources(STAGE_MODULES[stage], *adapters)) - adapter_files())


def weight_file_sha256(name: str) -> str:
    """sha256 of a weight file, read in chunks; "missing" for a file not there yet (the train stage then
    reports it), so that its arrival changes the fingerprint."""
    digest = hashlib.sha256()
    try:
        with open(name, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 24), b""):
                digest.update(chunk)
    except FileNotFoundError:
        return "missing"
    return digest.hexdigest()


def architecture_digest(code: str, builder: str, model_kwargs: dict) -> str:
    """A short hash of what fixes a model's architecture: its code fingerprint, its builder and its
    ``model_kwargs`` without the weight arguments (canonical JSON)."""
    kwargs = json.dumps(architecture_kwargs(model_kwargs), sort_keys=True, default=str)
    return hashlib.sha256(f"{code}\0{builder}\0{kwargs}".encode()).hexdigest()[:16]


def fingerprints(path: str | None = None) -> dict:
    """``{"stages": {stage: hash}, "models": {key: hash}, "architectures": {key: hash}, "adapters": {name: hash}}``
    for the stages, the params.yaml model entries (code and weights; architecture alone) and every dataset
    adapter."""

    params = load_params(path)
    models, architectures, shas = {}, {}, {}  # shas: each weight file read once, however many entries use it
    for key in params.models:
        spec = params.model_spec(key)
        code = files_digest(model_sources(spec.builder))
        architectures[key] = architecture_digest(code, spec.builder, spec.model_kwargs)
        try:
            source = weights_source(spec.builder, spec.model_kwargs)
        except UserError as err:  # pretrained: true on a model with nothing to load, an unknown smp encoder
            raise UserError(f"{params_path(path)}: models.{key}: {err}") from err
        if source is None:  # from scratch: the code-only hash
            models[key] = code
            continue
        files = sorted(source.get("files", {}).values())
        for name in files:
            if name not in shas:
                shas[name] = weight_file_sha256(name)
        weights = json.dumps(source, sort_keys=True) + "".join(f"+{name}={shas[name]}" for name in files)
        models[key] = hashlib.sha256(f"{code}{weights}".encode()).hexdigest()[:16]
    adapters = {name: files_digest([str(adapter_file(name).relative_to(REPO_ROOT))]) for name in adapter_names()}
    stages = {s: files_digest(stage_sources(s)) for s in STAGE_MODULES}
    return {"stages": stages, "models": models, "architectures": architectures, "adapters": adapters}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.fingerprint", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="code_fingerprints.yaml", help="YAML file to write")
    parser.add_argument("--params", default=None, help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    header = "# Generated by the `fingerprint` stage (python -m pipeline.fingerprint); read by dvc.yaml as params.\n"
    atomic_write_text(args.out, header + yaml.safe_dump(fingerprints(args.params), sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
