# The README's two commands: `make report` and `make test`.
# Each creates .venv if missing and installs the project with the pinned
# versions (skipped when pyproject.toml and constraints.txt are unchanged).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install report publish test test-fast lint bench clean

install: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,ray]'
	touch $(STAMP)

# the catalogue in the default frameworks, then with Keras on every backend (<folder>/backends/), into
# build/reports/ (git-ignored: a fresh clone's `make report` leaves `git status` clean on any machine,
# whose BLAS kernel may change float32's last digits)
REPORTS := build/reports

report: $(STAMP)
	$(BIN)/nn-parity report --out $(REPORTS)
	$(BIN)/nn-parity report --frameworks all --out $(REPORTS)/backends

# maintainers: refresh the committed catalogue (reports/, reports/backends/) on purpose; each report
# and index names the machine that made it (CPU, BLAS kernel, threads, versions)
publish: $(STAMP)
	$(MAKE) report REPORTS=reports

# lint (ruff: pycodestyle, pyflakes, import order) and types (mypy, strict on harness/judge and reference)
lint: $(STAMP)
	$(BIN)/ruff check harness reference tests
	$(BIN)/mypy

# pytest-xdist: one worker per core; --dist loadgroup sends the tests that share an expensive fixture
# (a catalogue scenario, a module-scoped fixture) to one worker (tests/conftest.py groups them), so
# each catalogue scenario still runs once per session
XDIST := -n auto --dist loadgroup

test: lint
	$(BIN)/python -m pytest $(XDIST)

# the edit loop: everything but the tests marked slow (whole catalogue scenarios, real training runs);
# also on every core (measured: 14 s instead of 19 s)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(XDIST)

bench: $(STAMP)
	$(BIN)/nn-parity bench sigmoid-exponential --baseline-fit

clean:
	rm -rf $(VENV)
