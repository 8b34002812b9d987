# lufmm_nb — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

PY_SYS ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
TORCH  := torch==2.13.0
export PYTHONHASHSEED := 0

.PHONY: help install install-dev run test test-fast test-slow check-sync check-clean check-readme \
        export clean-nbs readme nbtest pytest docs browser-test experiments bench lab

help:
	@echo "make run          install and run the main job (the article's table, every row exact, and its training experiment)"
	@echo "make test         install dev extras, check sync/clean/readme, run notebook tests and pytest"
	@echo "make test-slow    also run cells flagged #| slow and pytest -m slow"
	@echo "make docs         build the docs (Quarto if present, else a static HTML preview in _docs/)"
	@echo "make bench        run every benchmark and write bench_results/summary.md"
	@echo "make experiments  run the experiment notebooks in nbs/experiments (slow)"
	@echo "make lab          open JupyterLab on nbs/"

$(PY):
	$(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Runtime install: torch pinned to the CPU wheel first, so no CUDA build gets pulled in.
$(VENV)/.installed: $(PY) settings.ini setup.py
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e .
	touch $@

install: $(VENV)/.installed

$(STAMP): $(VENV)/.installed settings.ini setup.py
	$(PY) -m pip install -q "$(TORCH)" -e ".[dev]"
	touch $@

# Debian's Chromium for tests/test_docs_browser.py (Playwright drives it; never `playwright install`),
# and npm, which fetches MathJax once for the docs preview.
$(VENV)/.installed-browser: | $(PY)
	pkgs=""
	[ -x /usr/bin/chromium ] || pkgs="chromium chromium-driver"
	command -v npm >/dev/null || pkgs="$$pkgs npm"
	if [ -n "$$pkgs" ]; then
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo)
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y $$pkgs \
	    || { $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y $$pkgs; }
	fi
	touch $@

install-dev: $(STAMP) $(VENV)/.installed-browser

run: install
	$(BIN)/lufmm reproduce --out results

# ---------------------------------------------------------------------------------- tests
# The library must be what nbdev_export makes of the notebooks (checked in a scratch copy).
check-sync: install-dev
	$(PY) .ci/check_sync.py

# The notebooks must be what nbdev_clean makes of them.
check-clean: install-dev
	$(PY) .ci/check_clean.py

# README.md must be what .ci/readme.py makes of nbs/index.ipynb.
check-readme: install-dev
	$(PY) .ci/readme.py --check

nbtest: install-dev
	OMP_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers 2 --timing --skip_folder_re '^(experiments|[_.].*)$$'

pytest: install-dev
	$(BIN)/pytest -q -p no:cacheprovider

# Builds the docs preview and opens every page in Chromium (also part of `make pytest`).
browser-test: docs
	$(BIN)/pytest -q -p no:cacheprovider tests/test_docs_browser.py

test: check-sync check-clean check-readme nbtest docs pytest

test-slow: install-dev
	OMP_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers 2 --flags slow --timing --skip_folder_re '^(experiments|[_.].*)$$'
	$(BIN)/pytest -q -p no:cacheprovider -m slow || [ $$? = 5 ]

# ---------------------------------------------------------------------------------- authoring
export: install-dev
	$(BIN)/nbdev_export

clean-nbs: install-dev
	$(BIN)/nbdev_clean

readme: install-dev
	$(PY) .ci/readme.py

# Quarto present: nbdev_docs. Otherwise a static preview in _docs/ (.ci/build_docs.py; --keep-going there
# renders a notebook that nbdev cannot process from its stored outputs).
docs: install-dev
	$(PY) .ci/build_docs.py --keep-going

lab: install-dev
	$(BIN)/jupyter lab nbs/ $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

bench: install
	$(BIN)/lufmm bench --out bench_results

experiments: install-dev
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=-1 nbs/experiments/*.ipynb
