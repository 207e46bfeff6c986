# meterledger — set-up and checks. Every target creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed

.PHONY: demo test bench bench-postgresql bench-billing bench-dlms bench-vee lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(RUNTIME) $@

demo: $(RUNTIME)
	$(BIN)/meterledger demo

test: $(DEV)
	$(BIN)/pytest -n 2

bench: $(DEV)
	$(BIN)/python bench/ingest.py --backend sqlite

bench-postgresql: $(DEV)
	$(BIN)/python bench/ingest.py --backend postgresql

bench-billing: $(DEV)
	$(BIN)/python bench/billing.py

bench-dlms: $(DEV)
	$(BIN)/python bench/dlms.py

bench-vee: $(DEV)
	$(BIN)/python bench/vee.py

lint: $(DEV)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache .pytest_cache .hypothesis
