# The two commands of the quick start (`make run`, `make test`) work on a machine that has only
# Python 3.11+, pip and make: each creates .venv when it is missing and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run ui test bench lint formats demo-data clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/wulian demo

# The Streamlit app (coordinator, fund lab, data, runs) on http://localhost:8501.
ui: $(VENV)/.installed
	$(BIN)/wulian ui

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench
	$(BIN)/python -m bench.gap --small
	$(BIN)/python -m bench.gap
	$(BIN)/python -m bench.quarter --preset district
	$(BIN)/python -m bench.quarter --preset city
	$(BIN)/python -m bench.match --preset district
	$(BIN)/python -m bench.match --preset city
	$(BIN)/python -m bench.api
	$(BIN)/python -m bench.ui

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

formats: $(VENV)/.installed
	$(BIN)/wulian formats --out docs/formats.md

# The bundled demo is the district preset with seed 0; a test checks the two agree.
demo-data: $(VENV)/.installed
	rm -rf data/demo
	$(BIN)/wulian generate --preset district --seed 0 --out data/demo

clean:
	rm -rf $(VENV) out .pytest_cache
