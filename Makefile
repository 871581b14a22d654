# ganzoo — each target sets up what it needs itself (a .venv), so a fresh clone needs nothing else.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SHELL   := /bin/bash

.DEFAULT_GOAL := help
.PHONY: help install run test lint bench bench-gpu clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,fid]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install ganzoo with its dev and fid extras

# The main job: DCGAN on the built-in digits, sized for ~4 minutes on 2 CPU cores (half-width nets,
# batch 64, 3000 steps, EMA of G). Drop RUN_ARGS for the paper's full-size defaults.
RUN_DIR  ?= outputs/make_run
RUN_ARGS ?= model.ngf=32 model.ndf=32 trainer.batch_size=64 trainer.max_steps=3000 trainer.ema=true

run: $(STAMP) ## train DCGAN on the built-in offline digits (~4 min on 2 CPU cores), then sample a grid
	$(BIN)/ganzoo train $(RUN_ARGS) hydra.run.dir=$(RUN_DIR) overwrite=true  # the demo folder is redone each time
	$(BIN)/ganzoo sample run=$(RUN_DIR) n=100 out=$(RUN_DIR)/final_grid.png
	@echo "final grid: $(RUN_DIR)/final_grid.png"

test: $(STAMP) ## run the test suite (CPU, a few minutes)
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff
	$(BIN)/ruff check ganzoo tests benchmarks

bench: $(STAMP) ## speed and memory: ganzoo trainer vs a bare PyTorch loop and vs the reference's own loop (pix2pix, CycleGAN 256 px)
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/reference.py

bench-gpu: $(STAMP) ## on a GPU machine: CUDA smoke of every model, data-parallel, speed switches (one JSON)
	$(BIN)/python benchmarks/gpu_check.py

clean: ## remove outputs and caches (keeps .venv)
	rm -rf outputs multirun .pytest_cache
