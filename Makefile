# The two commands of the README. Both create .venv on first use and (re)install when pyproject changes.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dyglbench-installed

.PHONY: install test repro lint bench profile clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

# dvc.yaml runs `python -m ...`: put the project's interpreter first on PATH for every stage.
repro: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" dvc repro

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) -m pipeline.bench --models dyglnet --size 224 --batch 4

clean-venv:
	rm -rf $(VENV)

# make profile PROFILE=paper|quick: make configs/$(PROFILE).yaml the active params.yaml
profile:
	@test -f configs/$(PROFILE).yaml || { echo "no profile configs/$(PROFILE).yaml (have: $$(ls configs))"; exit 2; }
	cp configs/$(PROFILE).yaml params.yaml
	@echo "params.yaml is now the $(PROFILE) profile; run 'make repro'"
