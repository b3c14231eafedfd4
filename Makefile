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
	$(BIN)/python -m bench.yardstick
	$(BIN)/python -m bench.ui
	$(BIN)/python -m bench.cycle --preset district
	bash -c 'source .ci/postgres.sh && start_postgres && trap stop_postgres EXIT && \
		$(BIN)/python -m bench.cycle --preset district --store "$$WULIAN_TEST_PG_URL"'
	$(BIN)/python -m bench.cycle --preset city

# ruff on everything; mypy on contract/ and optimizer/ (pyproject's [tool.mypy]). mypy finds
# modules by folder, and the folders install under other names (pyproject's package-dir), so
# build/typed links these two as wulian.contract and wulian.optimizer, and nothing else of
# ours: an import of any other part of wulian from them fails there too.
TYPED := build/typed/wulian
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	rm -rf $(TYPED) && mkdir -p $(TYPED)
	ln -s "$(CURDIR)/wulian/__init__.py" $(TYPED)/__init__.py
	ln -s "$(CURDIR)/contract" $(TYPED)/contract
	ln -s "$(CURDIR)/optimizer" $(TYPED)/optimizer
	$(BIN)/mypy -p wulian.contract -p wulian.optimizer

formats: $(VENV)/.installed
	$(BIN)/wulian formats --out docs/formats.md

# The bundled demo is the district preset with seed 0; a test checks the two agree.
demo-data: $(VENV)/.installed
	rm -rf data/demo
	$(BIN)/wulian generate --preset district --seed 0 --out data/demo

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .mypy_cache build/typed
