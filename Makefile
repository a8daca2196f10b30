# The two fresh-machine commands (SPEC §6): `make demo` and `make test`.
# Each creates .venv when missing, installs the project into it, then runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench bench-quick fuzz fuzz-smoke clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/duplex demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck pytest

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

# The full benchmark table with the peers side by side (SPEC §7).
bench: $(BENCH_STAMP)
	$(BIN)/duplex bench

# CI's smoke run: every measure at small sizes, no timing assertions.
bench-quick: $(BENCH_STAMP)
	$(BIN)/duplex bench --quick --out-dir results

fuzz: $(STAMP)
	$(BIN)/duplex fuzz

# CI's short fuzz pass over both parsers, both dialects.
fuzz-smoke: $(STAMP)
	$(BIN)/duplex fuzz --seconds 20

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache .hypothesis
