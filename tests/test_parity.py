"""Every catalogue scenario: every pair of implementations agrees at every step, per dtype."""
from __future__ import annotations

import itertools

import pytest

from harness.adapters import FRAMEWORKS
from harness.scenario import DTYPES
from tests.conftest import CATALOGUE

PAIRS = list(itertools.combinations(FRAMEWORKS, 2))
CASES = [pytest.param(s.name, a, b, dtype, id=f"{s.name}[{a}-{b}-{dtype}]")
         for s in CATALOGUE for dtype in DTYPES for a, b in PAIRS]
RUNS = [pytest.param(s.name, fw, dtype, id=f"{s.name}[{fw}-{dtype}]")
        for s in CATALOGUE for dtype in DTYPES for fw in FRAMEWORKS]


@pytest.mark.parametrize("name, framework, dtype", RUNS)
def test_run_completes(result_of, name, framework, dtype):
    run = result_of(name).runs[(framework, dtype)]
    assert run.status == "ok", f"{name}: {framework} ({dtype}) {run.status}: {run.message}"
    assert run.steps > 0


@pytest.mark.parametrize("name, a, b, dtype", CASES)
def test_pair_agrees_every_step(result_of, name, a, b, dtype):
    result = result_of(name)
    comparison = result.comparison(a, b, dtype)
    assert comparison is not None, f"{name}: no comparison of {a} and {b} ({dtype})"
    assert comparison.steps_a == comparison.steps_b, comparison.note
    assert comparison.agree, comparison.describe_failure(name)
