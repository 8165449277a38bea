# imagingkit: set-up, demo, tests and benchmarks. Every target creates what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
S2P_VENV ?= .venv-suite2p
S2P_BIN := $(S2P_VENV)/bin
PIP_FLAGS ?= -q --disable-pip-version-check
DEMO_DIR ?= demo_output

.PHONY: venv install demo test test-suite2p suite2p-env bench-s2p-env bench lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -U pip

venv: $(BIN)/python

install: venv
	$(BIN)/pip install $(PIP_FLAGS) -e .

demo: install
	$(BIN)/imagingkit demo -o $(DEMO_DIR)

test: venv
	$(BIN)/pip install $(PIP_FLAGS) -e ".[test]"
	$(BIN)/python -m pytest

# A second environment with the suite2p extra (CPU torch); runs the suite2p-marked tests.
$(S2P_BIN)/python:
	$(PYTHON) -m venv $(S2P_VENV)
	$(S2P_BIN)/pip install $(PIP_FLAGS) -U pip

suite2p-env: $(S2P_BIN)/python
	$(S2P_BIN)/pip install $(PIP_FLAGS) "torch==2.13.0" "suite2p==0.14.6" "numpy<2.4" -e . pytest

test-suite2p: suite2p-env
	$(S2P_BIN)/python -m pytest -m suite2p

# suite2p 1.1 for side-by-side benchmarks (pulls a CUDA build of torch; runs on the CPU here).
BENCH_S2P_VENV ?= .venv-bench-s2p
$(BENCH_S2P_VENV)/bin/python:
	$(PYTHON) -m venv $(BENCH_S2P_VENV)
	$(BENCH_S2P_VENV)/bin/pip install $(PIP_FLAGS) "suite2p==1.1.0" pandas tifffile

bench-s2p-env: $(BENCH_S2P_VENV)/bin/python

bench: install suite2p-env bench-s2p-env
	$(BIN)/pip install $(PIP_FLAGS) -e ".[test]"
	$(BIN)/python benchmarks/run_all.py

lint: venv
	$(BIN)/pip install $(PIP_FLAGS) ruff
	$(BIN)/ruff check imagingkit plugins tests benchmarks sample_data
	$(BIN)/ruff format --check imagingkit plugins tests benchmarks sample_data

format: venv
	$(BIN)/ruff format imagingkit plugins tests benchmarks sample_data
	$(BIN)/ruff check --fix imagingkit plugins tests benchmarks sample_data

clean:
	rm -rf $(VENV) $(S2P_VENV) $(BENCH_S2P_VENV) $(DEMO_DIR) .pytest_cache
