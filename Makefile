# Two commands on a fresh machine:
#   make analysis   # creates .venv, runs the whole workflow on the embedded mock dataset
#   make test       # creates .venv, runs the test suite
PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
SNAKEMAKE_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: analysis test venv dryrun rulegraph clean bench bench-quick report image

$(STAMP): envs/requirements.txt envs/requirements-test.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r envs/requirements.txt -r envs/requirements-test.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# scripts/run_snakemake.py = snakemake, after clearing a lock left by a killed run (none alive here)
analysis: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python scripts/run_snakemake.py --cores $(CORES) $(SNAKEMAKE_ARGS)

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -ra $(PYTEST_ARGS)

dryrun: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake -n --quiet rules $(SNAKEMAKE_ARGS)

rulegraph: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --rulegraph $(SNAKEMAKE_ARGS)

report: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python scripts/run_snakemake.py --cores $(CORES) --report results/report.html $(SNAKEMAKE_ARGS)

# Speed figures (marginal rates, fixed costs, pipeline and `make analysis` wall times; ~10-15 min on
# 2 cores): the side-by-side table of issue 15, then the details. BENCH_ARGS: e.g. --sections marginal.
# bench-quick: the headline rows without the end-to-end run (pipeline, marginal rates; one round).
bench: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python benchmarks/run.py $(BENCH_ARGS)

bench-quick: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python benchmarks/run.py --sections pipeline,marginal --repeats 1 $(BENCH_ARGS)

clean:
	rm -rf results .snakemake

# Container image of the workflow (envs/Containerfile), tagged with a hash of its inputs; cached.
# BASE=python:3.11-slim where a registry is reachable; else a local Debian base (needs root).
image:
	bash scripts/build_image.sh
