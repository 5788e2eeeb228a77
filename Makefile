# The two commands of the README: `make demo` and `make test`.
# `make setup` is idempotent: it re-installs only when pyproject.toml or
# constraints.txt changed since the last install.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup test lint demo clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks modelsrc

test: lint
	$(PY) -m pytest -q

DEMO_PROJECT := examples/tutorials/project_composition

# Until the trainer lands: compile the example project and show what it builds.
demo: setup
	$(VENV)/bin/forgather -p $(DEMO_PROJECT) code
	$(VENV)/bin/forgather -p $(DEMO_PROJECT) construct

clean:
	rm -rf $(VENV) output_models
