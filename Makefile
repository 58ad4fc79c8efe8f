# The README's two commands: `make report` and `make test`.
# Each creates .venv if missing and installs the project with the pinned
# versions (skipped when pyproject.toml and constraints.txt are unchanged).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install report test test-fast lint bench clean

install: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

report: $(STAMP)
	$(BIN)/nn-parity report

# lint (ruff: pycodestyle, pyflakes, import order) and types (mypy, strict on harness/judge and reference)
lint: $(STAMP)
	$(BIN)/ruff check harness reference tests
	$(BIN)/mypy

# pytest-xdist: one worker per core; --dist loadgroup keeps the tests of one catalogue scenario on
# one worker (tests/conftest.py groups them), so each scenario still runs once per session
test: lint
	$(BIN)/python -m pytest -n auto --dist loadgroup

# the edit loop: everything but the tests marked slow (whole catalogue scenarios, real training runs)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/nn-parity bench sigmoid-exponential --baseline-fit

clean:
	rm -rf $(VENV)
