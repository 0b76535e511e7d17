# Crossdock developer commands. Every target creates/reuses ./.venv by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LINT_PATHS := crossdock tests $(wildcard bench)
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: help install demo test lint format test-fast bench bench-smoke bench-engine clean

help:
	@echo "make demo        run Crossdock with demo tenants on http://127.0.0.1:8700 (SQLite, in-process workers)"
	@echo "make test        lint (ruff, mypy) and the whole test suite (SQLite + PostgreSQL when reachable)"
	@echo "make test-fast   the suite without tests marked slow"
	@echo "make bench       side-by-side benchmark against peers (writes bench/results/latest.*)"
	@echo "make bench-smoke one-minute benchmark smoke run (Crossdock and the ceiling)"
	@echo "make bench-engine engine throughput benchmark (writes bench/results/engine-latest.json)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/crossdock up --demo

lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy crossdock

format: install
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

test: lint
	$(BIN)/pytest -ra --durations=15

test-fast: install
	$(BIN)/pytest -ra -m "not slow"

bench: install
	$(BIN)/python bench/run.py

bench-smoke: install
	$(BIN)/python bench/run.py --smoke

bench-engine: install
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) .crossdock .pytest_cache .mypy_cache .ruff_cache
