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

# lint (ruff: pycodestyle, pyflakes, import order, unused arguments), types (mypy, strict on
# harness/judge and reference), the package floors (import-linter's contracts in pyproject.toml: no
# package imports one above it) and names defined but never used (vulture: dead or test-only code)
lint: $(STAMP)
	$(BIN)/ruff check harness reference tests
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/vulture

# The tests keep compiled modules, pytest's assert-rewritten test modules included, in one folder
# outside the source tree (PYTHONDONTWRITEBYTECODE would have every pytest process and every
# subprocess a test starts compile harness/ and rewrite tests/ again: most of collection's time)
PYCACHE := build/pycache
test test-fast test-campaigns test-kernels: export PYTHONDONTWRITEBYTECODE :=
test test-fast test-campaigns test-kernels: export PYTHONPYCACHEPREFIX := $(abspath $(PYCACHE))

# pytest-xdist: one worker per core; --dist loadgroup sends the tests that share an expensive fixture
# (a catalogue scenario, a module-scoped fixture) to one worker (tests/conftest.py groups them), so
# each catalogue scenario still runs once per session
XDIST := -n auto --dist loadgroup

# everything but the fuzz campaigns with a planted defect (a minute or more each: make test-campaigns, which
# CI runs: tests/test_fuzz_recall.py and tests/test_fuzz.py's planted reference defect)
test: lint
	$(BIN)/python -m pytest $(XDIST) -m "not campaign"

# recall of `nn-parity fuzz`: one campaign per planted defect (tests/test_fuzz_recall.py) and the CLI campaign
# that finds, shrinks and replays a planted reference defect (tests/test_fuzz.py); CI runs it
.PHONY: test-campaigns
test-campaigns: $(STAMP)
	$(BIN)/python -m pytest -q $(XDIST) -m campaign

# the edit loop: everything but the tests marked slow (whole catalogue scenarios, real training runs,
# Keras started in a worker, a timeout of seconds waited out); also on every core (measured: 14 s instead of 19 s)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(XDIST)

bench: $(STAMP)
	$(BIN)/nn-parity bench sigmoid-exponential --baseline-fit

clean:
	rm -rf $(VENV)

# The tests a BLAS kernel or a thread count could move -- hostile input (overflowing products), the
# comparison rule, the golden values, $NN_PARITY_THREADS and every float32 test but the whole-catalogue
# ones (test_parity, test_metrics, test_scenarios) -- under OpenBLAS' Haswell, SkylakeX and Zen kernels
# (OPENBLAS_CORETYPE: what numpy's BLAS computes with) and with torch, TensorFlow and OpenBLAS on 1
# and 2 threads: no verdict may change. The whole catalogue under each kernel: .ci/kernel_verdicts.py.
# A core type whose kernel numpy's OpenBLAS already computed with in an earlier pass (asked at run time,
# threadpoolctl: an OpenBLAS build may map Zen to its Haswell kernel) is skipped, saying so: the same
# kernel computes the same bits.
.PHONY: test-kernels
KERNELS := Haswell SkylakeX Zen
KERNEL_THREADS := 1 2
KERNEL_TESTS := -k "float32 or test_hostile_input or test_compare or test_golden or test_threads" \
	--ignore=tests/test_parity.py --ignore=tests/test_metrics.py --ignore=tests/test_scenarios.py

# numpy's OpenBLAS kernels in use (library:kernel), as threadpoolctl reports them
export KERNEL_IN_USE := import numpy, os, threadpoolctl; print(",".join(sorted("%s:%s" % (os.path.basename(i["filepath"]), \
i.get("architecture")) for i in threadpoolctl.threadpool_info() if i["internal_api"] == "openblas")) or "none")

test-kernels: $(STAMP)
	@set -e; seen=" "; for kernel in $(KERNELS); do \
		picked=$$(OPENBLAS_CORETYPE=$$kernel $(BIN)/python -c "$$KERNEL_IN_USE"); \
		case "$$seen" in *" $$picked "*) \
			echo "make test-kernels: OPENBLAS_CORETYPE=$$kernel skipped: numpy's OpenBLAS computes with the kernel \
an earlier pass tested ($$picked)"; continue;; esac; \
		seen="$$seen$$picked "; \
		for threads in $(KERNEL_THREADS); do \
			echo "make test-kernels: OPENBLAS_CORETYPE=$$kernel (numpy computes with $$picked), $$threads threads"; \
			OPENBLAS_CORETYPE=$$kernel OPENBLAS_NUM_THREADS=$$threads NN_PARITY_THREADS=$$threads \
				$(BIN)/python -m pytest -q $(XDIST) $(KERNEL_TESTS); \
		done; \
	done
