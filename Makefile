# The two fresh-machine commands (SPEC §6): `make demo` and `make test`.
# Each creates .venv when missing, installs the project into it, then runs.
#
# The install is editable in setuptools' *strict* mode: the package folders are linked into
# build/__editable__… under their `duplex.*` names, so mypy and every tool see one module per
# file. A strict install does not see a module added later, so the layout stamp re-links
# (without re-resolving dependencies) whenever the set of package files changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := protocol transports engine simulator benchmarks cli testing aio
EDITABLE := --config-settings editable_mode=strict

.PHONY: demo test lint typecheck pytest bench bench-quick fuzz fuzz-smoke relink real-clients clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `make demo` needs only the simulator extra (no linters, no test tools).
$(VENV)/.installed-demo: pyproject.toml $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[simulator]' $(EDITABLE)
	touch $@

$(VENV)/.installed-test: pyproject.toml $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]' $(EDITABLE)
	touch $@

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e '.[test,bench]' $(EDITABLE)
	touch $@

# Re-link when a package file was added or removed since the last install.
relink: $(BIN)/python
	@find $(PACKAGES) -name '*.py' -o -name py.typed | sort > $(VENV)/.layout.new
	@if ! cmp -s $(VENV)/.layout.new $(VENV)/.layout; then \
		$(BIN)/python -m pip install --quiet --no-deps -e . $(EDITABLE) >$(VENV)/.relink.log 2>&1 && \
		mv $(VENV)/.layout.new $(VENV)/.layout; \
	fi

demo: $(VENV)/.installed-demo relink
	$(BIN)/duplex demo

lint: $(VENV)/.installed-test relink
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test relink
	$(BIN)/mypy

pytest: $(VENV)/.installed-test relink
	$(BIN)/python -m pytest

test: lint typecheck pytest

# The full benchmark table with the peers side by side (SPEC §7).
bench: $(VENV)/.installed-bench relink
	$(BIN)/duplex bench

# CI's smoke run: every measure at small sizes, no timing assertions.
bench-quick: $(VENV)/.installed-bench relink
	$(BIN)/duplex bench --quick --out-dir results

fuzz: $(VENV)/.installed-test relink
	$(BIN)/duplex fuzz

# CI's short fuzz pass over both parsers, both dialects.
fuzz-smoke: $(VENV)/.installed-test relink
	$(BIN)/duplex fuzz --seconds 20

# The real third-party clients some simulator tests drive (SPEC §5): headless Chromium
# (Debian's package) and the official `openai` JS SDK (npm, pinned by the lock file). Those
# tests skip, saying why, when these are missing; CI installs them.
real-clients:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null)
	npm ci --silent --no-audit --no-fund --prefix tests/simulator/js

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache .hypothesis
