# audiosr developer commands. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every package, transitive ones included, at the exact version and hash CI tested
# (Linux x86_64, CPython 3.11). pyproject.toml holds only compatible ranges.
LOCK := requirements.lock
export WANDB_SILENT ?= true

.DEFAULT_GOAL := help
.PHONY: help install lock quickstart fit test test-fast bench lint clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

# --require-hashes refuses anything the lock does not name, so no release outside it can
# slip in as a dependency; the project itself goes in without its dependencies and without
# build isolation (which would fetch an unpinned setuptools).
$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install audiosr with its test tools, exactly as locked

# Keeps every pin that still satisfies pyproject.toml (add a dependency there, then run
# this); UPGRADE="pkg ..." moves the named packages to their newest allowed release,
# UPGRADE=all moves everything. torch and torchaudio move together. Then run make test.
# It needs pip-compile from an installed .venv, not an up-to-date one: a dependency just added to
# pyproject.toml is not in the lock yet, so reinstalling first would fail.
UPGRADE ?=
lock:  ## re-resolve pyproject.toml into requirements.lock (UPGRADE="pkg ..." or UPGRADE=all)
	@test -x $(BIN)/pip-compile || $(MAKE) --no-print-directory install
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --all-build-deps --strip-extras \
		--no-emit-index-url --no-emit-find-links \
		--extra test --extra perceptual --extra dev \
		$(if $(filter all,$(UPGRADE)),--upgrade,$(foreach p,$(UPGRADE),--upgrade-package $(p))) \
		--output-file $(LOCK) pyproject.toml

QUICKSTART := --config configs/magphase.yaml --config configs/overlays/spectral-cpu.yaml --config configs/overlays/quickstart.yaml

# The test puts the shipped model (hours of real audio) beside the 5-minute one, on the same clips.
quickstart: $(STAMP)  ## train a CPU-sized model on built-in data, then score it beside the shipped model and resampling
	$(BIN)/audiosr fit $(QUICKSTART)
	$(BIN)/audiosr test $(QUICKSTART) --ckpt_path last --report.models "{shipped model: default}"
	@echo "audiosr: listen: open $$(ls -dt runs/quickstart/*/test | head -1)/report.html in a browser (self-contained; works from disk)"

fit: $(STAMP)  ## train the reference magnitude + phase recipe (configs/magphase.yaml; a GPU is advised)
	$(BIN)/audiosr fit --config configs/magphase.yaml

# Most of the suite's time is CLI subprocesses starting torch and Lightning (about 10 s each),
# which overlap well: two workers took 7.6 min where one took 9.1-10.4 on 2 cores (2026-12-03).
TEST_WORKERS ?= 2
test: $(STAMP)  ## run the whole test suite (TEST_WORKERS=1 runs it in one process)
	$(BIN)/python -m pytest -q $(if $(filter 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist worksteal)

test-fast: $(STAMP)  ## run the tests that take no subprocess or training
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)  ## speed and quality benchmarks on the dev recordings -> bench/RESULTS.md (about 90 minutes)
	$(BIN)/python -m bench

lint: $(STAMP)  ## byte-compile everything (catches syntax errors fast)
	$(BIN)/python -m compileall -q audiosr tests bench

clean:  ## remove runs, caches and the virtual environment
	rm -rf runs $(VENV) .pytest_cache
