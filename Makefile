# One command each, on a fresh machine (Python 3.10+):
#   make demo       create .venv, install, run the default suite -> reports/default/index.html
#   make test       create .venv, install with test extras, run the fast tests
#   make test-slow  the slow tests (end-to-end CLI runs, replications), as CI runs them
#   make test-heavy the slow tests kept out of CI's 15 minutes (the default suite on Ray vs the golden copy)
#   make bench      attack throughput: ours vs the bare loop vs ART
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-heavy test-all bench clean

$(STAMP): pyproject.toml build-constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	PIP_BUILD_CONSTRAINT=build-constraints.txt $(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/robustbench-gan run default --out reports/default

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow and not heavy"

test-heavy: $(STAMP)
	$(BIN)/python -m pytest -q -m heavy

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/attack_throughput.py

clean:
	rm -rf $(VENV) reports build *.egg-info
