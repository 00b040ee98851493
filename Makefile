# The two commands of the README. Both create .venv on first use and (re)install when pyproject changes.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dyglbench-installed

.PHONY: install test repro lint bench clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

repro: $(STAMP)
	$(VENV)/bin/dvc repro

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) -m pipeline.bench --models dyglnet --size 224 --batch 4

clean-venv:
	rm -rf $(VENV)
