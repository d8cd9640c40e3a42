# audiosr developer commands. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export WANDB_SILENT ?= true

.DEFAULT_GOAL := help
.PHONY: help install quickstart fit test test-fast bench lint clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install audiosr with its test tools

QUICKSTART := --config configs/magphase.yaml --config configs/spectral-cpu.yaml --config configs/quickstart.yaml

quickstart: $(STAMP)  ## train a CPU-sized model on built-in data, then compare it with classical resampling
	$(BIN)/audiosr fit $(QUICKSTART)
	$(BIN)/audiosr test $(QUICKSTART) --ckpt_path last

fit: $(STAMP)  ## train the reference magnitude + phase recipe (configs/magphase.yaml; a GPU is advised)
	$(BIN)/audiosr fit --config configs/magphase.yaml

test: $(STAMP)  ## run the whole test suite
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)  ## run the tests that take no subprocess or training
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)  ## speed and quality benchmarks on the dev recordings -> bench/RESULTS.md (about 90 minutes)
	$(BIN)/python -m bench

lint: $(STAMP)  ## byte-compile everything (catches syntax errors fast)
	$(BIN)/python -m compileall -q audiosr tests bench

clean:  ## remove runs, caches and the virtual environment
	rm -rf runs $(VENV) .pytest_cache
