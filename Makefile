# Two commands do all the set-up: `make serve` runs the service, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
DEPS   := pyproject.toml requirements/constraints.txt

.PHONY: serve test lint bench openapi clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python $(DEPS)
	$(PIP) install --quiet -c requirements/constraints.txt -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed $(DEPS)
	$(PIP) install --quiet -c requirements/constraints.txt -e '.[test,lint]'
	touch $@

serve: $(VENV)/.installed  ## install (first time) and run the service on 127.0.0.1:8000
	$(BIN)/descent serve

test: $(VENV)/.installed-test  ## install (first time) and run every test
	$(BIN)/ruff check engine service descent_client tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadgroup

lint: $(VENV)/.installed-test
	$(BIN)/ruff check engine service descent_client tests benchmarks
	$(BIN)/ruff format --check engine service descent_client tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

openapi: $(VENV)/.installed
	$(BIN)/descent openapi > openapi/openapi.json

bench: $(VENV)/.installed-test  ## the engine and service benchmarks (PyTorch, when installed, is compared too)
	$(PIP) install --quiet -c requirements/constraints.txt -e '.[bench]'
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/service.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache .grimp_cache .import_linter_cache
