# seq2seq — every target installs what it needs first (into .venv, or the active virtualenv).
SHELL := /bin/bash
ARGS ?=
VENV_DIR := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV),.venv)
PY := $(VENV_DIR)/bin/python
STAMP := $(VENV_DIR)/.seq2seq-installed
# CPU machines get the CPU wheel that lies on disk; a bare range would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 1)

.PHONY: install data train translate evaluate attention serve compare bench gpu-check test clean help

help:
	@echo "make install | data | train | translate TEXT=... | evaluate | attention TEXT=... | serve | compare | bench | gpu-check | test"
	@echo "Pass Hydra overrides or CLI flags with ARGS=\"...\""

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV_DIR)
	$(PY) -m pip install -q --upgrade pip
	@if [ -z "$(HAS_GPU)" ] && ! $(PY) -c "import torch" 2>/dev/null; then $(PY) -m pip install -q $(TORCH_SPEC); fi
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

data: $(STAMP)
	$(PY) -m seq2seq data $(ARGS)

train: $(STAMP)
	$(PY) -m seq2seq train $(ARGS)

TEXT ?= Alice enjoyed the sunny weather in Brussels.
translate: $(STAMP)
	$(PY) -m seq2seq translate $(ARGS) "$(TEXT)"

evaluate: $(STAMP)
	$(PY) -m seq2seq evaluate $(ARGS)

attention: $(STAMP)
	$(PY) -m seq2seq attention $(ARGS) "$(TEXT)"

serve: $(STAMP)
	$(PY) -m seq2seq serve $(ARGS)

SIZES ?= small
SEEDS ?= 1
compare: $(STAMP)
	$(PY) -m seq2seq compare sizes="[$(shell echo $(SIZES) | tr ' ' ',')]" seeds="[$(shell echo $(SEEDS) | tr ' ' ',')]" $(ARGS)

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m seq2seq.bench $(ARGS)

gpu-check: $(STAMP)
	$(PY) scripts/gpu_check.py $(ARGS)

# ruff (lint and import order) and import-linter (the layers contract in pyproject.toml)
lint: $(STAMP)
	$(VENV_DIR)/bin/ruff check seq2seq tests scripts
	$(VENV_DIR)/bin/lint-imports

test: lint
	$(PY) -m pytest $(ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" -n 2 --dist loadfile $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache
