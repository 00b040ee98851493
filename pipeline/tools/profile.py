"""Make a profile of ``configs/`` the active ``params.yaml``, optionally for one dataset of your own.

    python -m pipeline.tools.profile paper                       # configs/paper.yaml -> params.yaml
    python -m pipeline.tools.profile real-cpu --dataset ph2 --raw "data/raw/PH2 Dataset images"

(``make profile PROFILE=... [DATASET=... RAW=...] [FORCE=1]`` runs it.) With ``--dataset``, the profile's
``datasets:`` section is replaced by that one dataset; everything else, comments included, is the profile's. The
result is validated like every params.yaml before it is written (atomically). A ``params.yaml`` that matches no
profile holds your edits: it is kept unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from core.cli import run
from core.errors import UserError
from core.fsutil import atomic_write_text
from core.paths import REPO_ROOT
from engine.params import load_params

CONFIGS = REPO_ROOT / "configs"
DATASETS_BLOCK = re.compile(r"^datasets:.*?(?=^\S)", re.MULTILINE | re.DOTALL)  # up to the next top-level key


def profile_names() -> list[str]:
    """The profiles in configs/."""
    return sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def with_dataset(text: str, dataset: str, raw: str) -> str:
    """A profile's text with its ``datasets:`` section replaced by one dataset (the folder quoted as YAML)."""
    block = f"datasets:\n  {dataset}:\n    raw: {json.dumps(raw, ensure_ascii=False)}\n\n"
    if not DATASETS_BLOCK.search(text):
        raise UserError("the profile has no top-level datasets: section to replace")
    return DATASETS_BLOCK.sub(lambda _: block, text, count=1)


def activate(profile: str, out: Path, dataset: str | None = None, raw: str | None = None, force: bool = False) -> str:
    """Write the profile (with one dataset, if given) to ``out``; returns what was written."""
    source = CONFIGS / f"{profile}.yaml"
    if not source.is_file():
        raise UserError(f"no profile configs/{profile}.yaml (have: {', '.join(profile_names())})")
    if (dataset is None) != (raw is None):
        raise UserError("--dataset and --raw go together (the dataset's adapter name and its folder)")
    text = source.read_text(encoding="utf-8")
    if dataset is not None:
        text = with_dataset(text, dataset, raw)
    if out.exists() and not force:
        current = out.read_text(encoding="utf-8")
        if current != text and all(current != p.read_text(encoding="utf-8") for p in CONFIGS.glob("*.yaml")):
            raise UserError(
                f"{out} differs from every profile in configs/ (your edits would be lost); save it as "
                "configs/NAME.yaml or rerun with FORCE=1 (--force)"
            )
    tmp = out.with_name(f".{out.name}.candidate")
    try:
        tmp.write_text(text, encoding="utf-8")
        load_params(tmp)  # the same checks as every stage: a bad dataset name or folder is refused here
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_text(out, text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", help="a profile of configs/ (its file name without .yaml)")
    parser.add_argument("--dataset", help="run this dataset alone (an adapter name: python -m datasets lists them)")
    parser.add_argument("--raw", help="the dataset's folder as downloaded (any name: spaces, accents...)")
    parser.add_argument("--out", type=Path, default=Path("params.yaml"), help="default: %(default)s")
    parser.add_argument("--force", action="store_true", help="overwrite a params.yaml that holds edits")
    args = parser.parse_args(argv)
    activate(args.profile, args.out, args.dataset, args.raw, args.force)
    what = f" with {args.dataset} from {args.raw}" if args.dataset else ""
    print(f"{args.out} is now the {args.profile} profile{what}; run 'make repro'")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
