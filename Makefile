# ganzoo — each target sets up what it needs itself (a .venv), so a fresh clone needs nothing else.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SHELL   := /bin/bash

.DEFAULT_GOAL := help
.PHONY: help install run test lint bench clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install ganzoo with its dev extras

run: $(STAMP) ## train the default model (DCGAN) on the built-in offline digits, then sample from it
	$(BIN)/ganzoo train hydra.run.dir=outputs/make_run
	$(BIN)/ganzoo sample run=outputs/make_run n=100 out=outputs/make_run/final_grid.png
	@echo "final grid: outputs/make_run/final_grid.png"

test: $(STAMP) ## run the test suite (CPU, a few minutes)
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff
	$(BIN)/ruff check ganzoo tests benchmarks

bench: $(STAMP) ## speed and memory: ganzoo trainer vs a bare PyTorch loop, sampling images/s
	$(BIN)/python benchmarks/bench.py

clean: ## remove outputs and caches (keeps .venv)
	rm -rf outputs multirun .pytest_cache
