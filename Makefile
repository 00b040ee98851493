# The commands of the README and the docs. Each creates .venv on first use and (re)installs when pyproject.toml changes.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dyglbench-installed
# dvc.yaml runs `python -m ...`: the project's interpreter goes first on PATH for every stage.
RUN := PATH="$(abspath $(VENV))/bin:$$PATH"

.PHONY: install test test-dvc-min test-fast docs docs-serve repro repro-paper grid bench-grid lint bench profile weights data push pull clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,docs]'
	touch $@

install: $(STAMP)

# One pytest worker per core (pytest-xdist); each worker runs single-threaded.
test: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -n auto

# The DVC contract tests and the grid's tests against the LOWEST DVC that pyproject.toml allows: the same venv with
# that DVC (and the exact versions of its dependencies it needs, .ci/dvc-min.txt) first on the path. CI runs it after
# `make test`. (platformdirs: the venv's newer one registers a pytest plugin the older one lacks.)
DVC_MIN := .venv-dvcmin
$(DVC_MIN)/.installed: .ci/dvc-min.txt
	rm -rf $(DVC_MIN)
	$(PY) -m pip install --quiet --no-deps --target $(DVC_MIN) -r .ci/dvc-min.txt
	touch $@

test-dvc-min: $(STAMP) $(DVC_MIN)/.installed
	PYTHONPATH=$(DVC_MIN) $(PY) -c "from dvc.version import __version__ as v; from pipeline.grid.dvc_adapter import \
	LOWEST_TESTED as low; assert v == low, (v, low); print('dvc', v, '(the lowest of the range)')"
	PYTHONPATH=$(DVC_MIN) $(RUN) $(PY) -m pytest -p no:platformdirs -n auto tests/test_dvc_contract.py tests/test_grid.py

# Everything but the tests marked slow (end-to-end DVC runs, LaTeX, 224-only models): about 3 minutes on 2 cores
# (171 s measured; the whole suite, `make test`, 602 s).
test-fast: $(STAMP)
	$(PY) -m pytest -n auto -m "not slow"

# The documentation site (docs/, mkdocs.yml) into site/. --strict: a broken link, a page missing from the nav or a
# params.yaml key without a description fails the build. The reference pages are generated from the code
# (docs/gen_pages.py). docs-serve rebuilds on every edit and serves on 127.0.0.1 only.
# (The two variables silence a notice of the theme and one of a plugin about MkDocs' future, printed on every build.)
DOCS_ENV := NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true
docs: $(STAMP)
	$(DOCS_ENV) $(VENV)/bin/mkdocs build --strict

docs-serve: $(STAMP)
	$(DOCS_ENV) $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8000

# make repro [JOBS=N] [GRID_ARGS='--executor slurm']: what `dvc repro` does (the out-of-date stages of
# dvc.yaml, recorded in dvc.lock; `dvc status` is clean afterwards), several stages at a time: one job per
# GPU, else the cores shared out among the jobs ready to start (pipeline.grid). `make grid` is the same command.
repro grid: $(STAMP)
	$(RUN) $(PY) -m pipeline.grid $(if $(JOBS),--jobs $(JOBS)) $(GRID_ARGS)

# The paper's protocol on a GPU machine: switch the profile, then reproduce.
repro-paper: $(STAMP)
	$(MAKE) profile PROFILE=paper
	$(MAKE) repro

# Wall time of `make repro` (or `make grid JOBS=N`) against `dvc repro` of the same stages, each in a fresh copy, on
# a machine it names; BENCH_ARGS=--floor also runs a grid at one thread per job (the floor), BENCH_ARGS="--set k=v".
bench-grid: $(STAMP)
	$(RUN) $(PY) -m pipeline.tools.bench_grid $(if $(JOBS),--jobs $(JOBS)) $(BENCH_ARGS)

# make weights [PARAMS=configs/paper-pretrained.yaml]: download into the Hugging Face cache (HF_HOME/HF_HUB_CACHE)
# the Hub weights of every models: entry with model_kwargs.pretrained: true, once; then jobs can run with HF_HUB_OFFLINE=1.
weights: $(STAMP)
	$(PY) -m models fetch-weights --params $(or $(PARAMS),params.yaml)

# make data [PROFILE=paper]: the datasets of configs/$(PROFILE).yaml: fetch the ones with a public URL into their raw:
# folders, check every one (python -m datasets check), and list what is still missing with the exact next step.
# Exit status 2 while a dataset is missing or has problems.
data: $(STAMP)
	$(PY) -m pipeline.tools.data --params configs/$(or $(PROFILE),paper).yaml

# make push / make pull: the DVC cache (checkpoints, predictions, prepared and generated data) to / from the default
# DVC remote (docs/how-to/dvc-remote.md); git carries the rest (dvc.lock, logs, metrics, output/).
push: $(STAMP)
	$(RUN) $(VENV)/bin/dvc push

pull: $(STAMP)
	$(RUN) $(VENV)/bin/dvc pull

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

bench: $(STAMP)
	$(PY) -m pipeline.tools.bench --models dyglnet --size 224 --batch 4

clean-venv:
	rm -rf $(VENV)

# make profile PROFILE=NAME [DATASET=ph2 RAW="data/raw/PH2 Dataset images"] [FORCE=1]: make configs/NAME.yaml the
# active params.yaml (with that one dataset, if given). A params.yaml that matches no profile holds your edits: it is
# kept unless FORCE=1.
profile: $(STAMP)
	@$(PY) -m pipeline.tools.profile "$(PROFILE)" $(if $(DATASET),--dataset "$(DATASET)" --raw "$(RAW)") $(if $(FORCE),--force)
