"""MkDocs build step (mkdocs-gen-files): writes the generated reference pages from the code.

The page texts come from ``pipeline.tools.reference_docs``; an error there (a params key without a description,
a command without a parser, an unreadable benchmark file) fails ``mkdocs build``.
"""

from pathlib import Path

import mkdocs_gen_files

from pipeline.tools import reference_docs as ref

CACHE = Path(".cache/docs/model_sizes.json")  # git-ignored: counts of models whose code has not changed

pages = {
    "reference/params.md": ref.params_page(),
    "reference/cli.md": ref.cli_page(),
    "reference/stages.md": ref.stages_page(),
    "reference/models.md": ref.models_page(CACHE),
    "reference/datasets.md": ref.datasets_page(),
    "reference/metrics.md": ref.metrics_page(),
    "reference/benchmarks.md": ref.benchmarks_page(),
    **ref.default_run_pages(),
}
for name, content in pages.items():
    with mkdocs_gen_files.open(name, "wb" if isinstance(content, bytes) else "w") as fh:
        fh.write(content)
