"""The documentation: generated reference pages cover the code, and the commands the pages show work.

The site itself is built by ``make docs`` (``mkdocs build --strict``, in CI); these tests check what a build
cannot: that the tutorial's commands run, that the "add a baseline" guide's example is picked up, and that every
``python -m`` command written in the README and the pages parses with that command's own parser.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, Field

from pipeline.tools import reference_docs as ref

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)


def code_blocks(path: Path, language: str) -> list[str]:
    """The fenced code blocks of one language in a Markdown file, in order."""
    return [body for lang, body in FENCE.findall(path.read_text(encoding="utf-8")) if lang == language]


def doc_pages() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


# ---------------------------------------------------------------- generated reference


def test_every_params_key_has_a_description_and_is_on_the_page():
    from engine.params import Params

    page = ref.params_page()
    todo = [("", Params)]
    while todo:
        prefix, model = todo.pop()
        rows, nested = ref.section_rows(model, prefix)
        assert len(rows) == len(model.model_fields)
        for row in rows:
            assert row in page
        todo += [(f"{key}.", sub) for key, sub in nested]
    for section in ("train", "grid.slurm", "models.NAME", "synthetic.NAME", "transfer.test_only.NAME"):
        assert f"## `{section}`" in page


def test_a_key_without_a_description_fails_the_build_naming_it():
    class Undocumented(BaseModel):
        lr: float = Field(1e-3, gt=0)

    with pytest.raises(ref.ReferenceError, match=r"Undocumented\.lr \(train\.lr\) has no description"):
        ref.section_rows(Undocumented, "train.")


def test_types_defaults_and_bounds_are_read_from_the_schema():
    page = ref.params_page()
    assert "| `train.lr` | float | `0.001` | `> 0` |" in page
    assert "| `train.selection` | one of: `last`, `carve` | `last` |" in page
    assert "| `augment.hflip_p` | float | `0.5` | `>= 0`, `<= 1` |" in page
    assert "| `train.steps` | int or null | `null` | `>= 1` |" in page


def _entry_point_modules() -> set[str]:
    found = set()
    for path in REPO.glob("[a-z]*/**/*.py"):
        rel = path.relative_to(REPO)
        if rel.parts[0] in ("tests", "docs") or ".venv" in rel.parts[0]:
            continue
        text = path.read_text(encoding="utf-8")
        if path.name == "__main__.py" or '__name__ == "__main__"' in text:
            found.add(".".join(rel.with_suffix("").parts))
    return found


def test_the_command_reference_covers_every_entry_point():
    listed = {module for _, module, _ in ref.COMMANDS} | ref.INTERNAL_COMMANDS
    # python -m pipeline.grid runs pipeline/grid/__main__.py, which calls pipeline.grid.coordinator's main
    listed |= {"pipeline.grid.__main__"}
    missing = _entry_point_modules() - listed
    assert not missing, f"commands missing from reference_docs.COMMANDS: {sorted(missing)}"


def test_the_command_reference_is_each_parsers_help():
    page = ref.cli_page()
    for shown, module, argv in ref.COMMANDS:
        parser = ref.command_parser(module, argv)
        assert f"## `{shown}`" in page
        for action in parser._actions:
            for flag in action.option_strings:
                assert flag in page, f"{shown}: {flag} missing from the page"


def test_the_stages_page_lists_every_stage_with_its_command():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    page = ref.stages_page()
    for name, stage in stages.items():
        assert f"## {name}\n" in page
        cmd = " ".join(str(stage.get("do", stage)["cmd"]).split())
        assert cmd in page


def test_the_datasets_page_has_each_adapters_layout_and_source():
    from datasets.catalog import source
    from datasets.registry import adapter_names, get_adapter

    page = ref.datasets_page()
    for name in adapter_names():
        assert f"## {name}\n" in page
        assert get_adapter(name).layout.strip().splitlines()[0].strip() in page
        for archive in source(name).archives:
            if archive.hash:
                assert archive.hash in page


def test_the_datasets_page_has_each_licence_source_and_citation_as_the_catalogue():
    from datasets.catalog import SOURCES

    page = ref.datasets_page()
    for s in SOURCES.values():
        assert ref.cell(s.licence) in page, s.name
        if s.citation:
            assert ref.cell(s.citation) in page, s.name
        for archive in s.archives:
            if archive.url:
                assert f"<{archive.url}>" in page, archive.url


def test_ph2_image_sizes_are_the_real_ones():
    """PH2's dermoscopic images are 761-769 x 553-577 pixels, not all 768 x 560."""
    page = ref.datasets_page()
    line = next(line for line in page.splitlines() if "IMD<nnn>_Dermoscopic_Image/IMD<nnn>.bmp" in line)
    assert "761-769 x 553-577" in line and "768 x 560" not in page


def test_the_models_page_counts_what_it_lists(tmp_path):
    from models.complexity import count_params
    from models.registry import create_model

    cache = tmp_path / "sizes.json"
    page = ref.models_page(cache, ["unet", "dcsaunet"])
    assert f"| `unet` | Unet | CNN | {count_params(create_model('unet')) / 1e6:.2f} |" in page
    assert len(json.loads(cache.read_text())) == 2
    assert ref.models_page(cache, ["unet", "dcsaunet"]) == page  # from the cache, the same


def _bench_result(**extra) -> dict:
    return {
        "machine": {"cpu": "Test CPU", "bf16": False, "cores": 2, "gpu": None, "torch": "2.x"},
        "command": "python -m pipeline.tools.bench_grid --floor",
        "repro": {"seconds": 100.0},
        "grid": {
            "seconds": 80.0,
            "idle": {"idle_core_seconds": 12.5, "longest_idle_with_a_training_running_epochs": 0.9},
        },
        "ratio": 0.8,
        "estimates": [{"job": "train@d-m-42", "estimate_s": 50.0, "train_s": 40.0}],
        **extra,
    }


def test_the_benchmarks_page_renders_each_result_with_its_machine(tmp_path):
    (tmp_path / "grid-fp32.json").write_text(json.dumps(_bench_result(title="Grid, fp32")))
    (tmp_path / "loader.json").write_text(
        json.dumps({"machine": {"cpu": "Test CPU", "torch": "2.x"}, "command": "x", "rows": [{"workers": 0, "s": 1.5}]})
    )
    page = ref.benchmarks_page(tmp_path)
    assert "## Grid, fp32" in page and "Test CPU, no bf16, 2 cores, GPU: none, torch 2.x" in page
    assert "| ratio grid + report / `dvc repro` | 0.80 |" in page and "+25 %" in page
    assert "| longest idle period with a training running, in its epochs | 0.90 |" in page
    assert "| workers | s |" in page and "| 0 | 1.50 |" in page


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "unreadable benchmark result"), (json.dumps({"command": "x", "rows": [{}]}), "no `machine` record")],
)
def test_a_bad_benchmark_file_fails_the_build_naming_it(tmp_path, content, message):
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(ref.ReferenceError, match=rf"bad\.json: .*{re.escape(message)}"):
        ref.benchmarks_page(tmp_path)


def test_the_committed_benchmark_results_render():
    page = ref.benchmarks_page()
    for path in sorted((DOCS / "benchmarks").glob("*.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        assert ref.machine_line(result["machine"]) in page


def test_the_default_run_page_includes_the_committed_reports_as_they_are():
    pages = ref.default_run_pages()
    page = pages["results/default-run.md"]
    for report in sorted((REPO / "output" / "quick").glob("*.md")):
        body = report.read_text(encoding="utf-8")
        lines = [line for line in body.splitlines() if line.strip() and not line.startswith("#")]
        assert f"## `{report.name}`" in page and lines[0] in page and lines[-1] in page
    for figure in (REPO / "output" / "quick").glob("*.png"):
        assert pages[f"results/{figure.name}"] == figure.read_bytes()


# ---------------------------------------------------------------- the commands written in the pages


class _ParseError(Exception):
    pass


def _commands_in(text: str) -> list[list[str]]:
    """``python -m ...`` invocations of the shell blocks of a page, as argument lists (from ``-m`` on)."""
    found = []
    for lang, body in FENCE.findall(text):
        if lang not in ("bash", "sh", "console"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = re.split(r"\s+#\s", line)[0]
            if "python -m" not in line or "..." in line or "<" in line:
                continue
            rest = re.split(r"\||&&|;", line.split("python -m", 1)[1])[0]
            rest = re.sub(r"\[(--[^\]]*)\]", r"\1", rest)  # a synopsis: [--flag VALUE] is an optional flag
            try:
                words = shlex.split(rest)
            except ValueError:  # the end of a quoted command, e.g. sbatch --wrap "python -m pipeline.grid ..."
                words = shlex.split(rest.replace('"', "").replace("'", ""))
            found.append(words)
    return found


def _parser_for(words: list[str]) -> tuple[argparse.ArgumentParser, list[str]] | None:
    best = None
    for shown, module, argv in ref.COMMANDS:
        name = shown.removeprefix("python -m ").split()
        if words[: len(name)] == name and (best is None or len(name) > len(best[0])):
            best = (name, module, argv)
    if best is None:
        return None
    name, module, argv = best
    return ref.command_parser(module, argv), words[len(name) :]


def test_every_python_m_command_in_the_readme_and_pages_parses():
    checked, wrong = 0, []
    for page in doc_pages():
        for words in _commands_in(page.read_text(encoding="utf-8")):
            found = _parser_for(words)
            if found is None:
                continue
            parser, args = found

            def fail(message, _page=page, _words=words):
                raise _ParseError(f"{_page.relative_to(REPO)}: python -m {' '.join(_words)}: {message}")

            parser.error = fail
            try:
                parser.parse_args(args)
            except _ParseError as err:
                wrong.append(str(err))
            except SystemExit:
                pass  # --help
            checked += 1
    assert checked >= 20
    assert not wrong, "\n".join(wrong)


def test_the_readme_stays_short():
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 300


# ---------------------------------------------------------------- tutorials and guides, run


def _clone(work: Path) -> None:
    """The repository's tracked and new files, without generated outputs, as a git repository, sharing .venv."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        generated = name.startswith(("runs/", "results/", "output/", "data/", "metrics/")) or name == "dvc.lock"
        if (REPO / name).is_file() and not generated:
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, work / name)
    venv = Path(sys.executable).parent.parent
    (work / ".venv").symlink_to(venv)
    stamp = venv / ".dyglbench-installed"
    if stamp.exists():  # make's install step sees an installed environment and leaves it alone
        os.utime(work / "pyproject.toml", (stamp.stat().st_mtime - 1,) * 2)
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)


def _clone_and_params(tmp_path: Path) -> tuple[Path, dict]:
    """A clone in ``tmp_path/clone`` and its params.yaml, to edit and save with :func:`_save_params`."""
    work = tmp_path / "clone"
    work.mkdir()
    _clone(work)
    return work, yaml.safe_load((work / "params.yaml").read_text(encoding="utf-8"))


def _save_params(work: Path, params: dict) -> None:
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def _bash(script: str, cwd: Path, tmp: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DYGLBENCH_CACHE_DIR": str(tmp / "cache"),
        "PATH": f"{Path(sys.executable).parent}:" + os.environ["PATH"],
    }
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(["bash", "-c", "set -e\n" + script], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_the_first_run_tutorial_runs_as_written(tmp_path):
    tutorial = DOCS / "tutorials" / "first-run.md"
    work, params = _clone_and_params(tmp_path)
    for name, entry in params["synthetic"].items():  # a smaller task; every command of the page unchanged
        params["synthetic"][name] = {**entry, "n": 40, "size": 32}
    params["train"].update(steps=2, batch_size=8)
    params["evaluate"]["bootstrap"] = 20
    params["complexity"] = {"size": 32, "repeats": 1, "warmup": 0}
    params["report"]["compare_to"] = None  # the clone has no commit to compare with
    _save_params(work, params)

    blocks = code_blocks(tutorial, "bash")
    assert len(blocks) >= 4
    result = _bash("\n".join(blocks), work, tmp_path)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "up to date" in result.stdout  # dvc status: "Data and pipelines are up to date."
    for named in sorted(set(re.findall(r"output/quick/[\w.]+\.(?:md|tex|png)", tutorial.read_text()))):
        assert (work / named).is_file(), f"the tutorial names {named}, which the run did not write"
    status = _bash("dvc status --json", work, tmp_path)
    assert json.loads(status.stdout) == {}


@pytest.mark.slow
def test_the_add_a_baseline_guide_example_trains(tmp_path):
    """The guide's module, imported as a baseline: registered, and a forward and backward pass at any size."""
    example = next(
        b for b in code_blocks(DOCS / "how-to" / "add-baseline.md", "python") if b.startswith("# baselines/")
    )
    (tmp_path / "tiny_unet.py").write_text(example)
    script = textwrap.dedent(f"""
        import torch
        import baselines
        baselines.__path__.append({str(tmp_path)!r})
        from models import create_model, list_models, model_info
        assert "tiny_unet" in list_models()
        model = create_model("tiny_unet")
        out = model(torch.randn(2, 3, 32, 48))
        assert out.shape == (2, 1, 32, 48), out.shape
        out.mean().backward()
        print(model_info("tiny_unet").family)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "CNN"


@pytest.mark.slow
def test_the_add_a_baseline_guide_lists_the_new_models_stages(tmp_path):
    guide = DOCS / "how-to" / "add-baseline.md"
    work, params = _clone_and_params(tmp_path)
    example = next(b for b in code_blocks(guide, "python") if b.startswith("# baselines/"))
    target = example.splitlines()[0].removeprefix("# ").strip()
    ast.parse(example)
    (work / target).write_text(example, encoding="utf-8")
    for block in code_blocks(guide, "yaml")[:1]:  # the guide's params.yaml edit
        params["models"].update(yaml.safe_load(block)["models"])
    _save_params(work, params)

    name = Path(target).stem
    result = _bash("\n".join(code_blocks(guide, "bash")), work, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for stage in (f"train@synthetic-{name}-42", f"evaluate@synthetic-{name}-42", f"complexity@{name}"):
        assert stage in result.stdout, f"the guide's commands do not list {stage}:\n{result.stdout}"
    assert re.search(rf"{name}\s+CNN", result.stdout), result.stdout  # python -m models: built and listed
