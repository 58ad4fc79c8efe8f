"""Every catalogue scenario: every compared pair of implementations agrees at every step, per
dtype (or, for an optimizer whose Keras and torch arithmetic differ, differs only by that
convention, each framework agreeing with the reference run in its own convention)."""
from __future__ import annotations

import pytest

from harness.run.adapters import FRAMEWORKS
from harness.run.runner import implementations, planned_pairs
from harness.spec.scenario import DTYPES
from tests.conftest import CATALOGUE


CASES = [pytest.param(s.name, a, b, dtype, id=f"{s.name}[{a}-{b}-{dtype}]")
         for s in CATALOGUE for dtype in DTYPES for a, b in planned_pairs(s)]
RUNS = [pytest.param(s.name, label, dtype, id=f"{s.name}[{label}-{dtype}]")
        for s in CATALOGUE for dtype in DTYPES for label in implementations(s, FRAMEWORKS)]


@pytest.mark.parametrize("name, label, dtype", RUNS)
def test_run_completes(result_of, name, label, dtype):
    run = result_of(name).runs[(label, dtype)]
    assert run.status == "ok", f"{name}: {label} ({dtype}) {run.status}: {run.message}"
    assert run.steps > 0 or not result_of(name).scenario.trains


@pytest.mark.parametrize("name, a, b, dtype", CASES)
def test_pair_agrees_every_step(result_of, name, a, b, dtype):
    result = result_of(name)
    comparison = result.comparison(a, b, dtype)
    assert comparison is not None, f"{name}: no comparison of {a} and {b} ({dtype})"
    assert comparison.steps_a == comparison.steps_b, comparison.note
    assert comparison.ok, comparison.describe_failure(name)
    if not comparison.agree:  # only an explained convention difference may remain
        assert comparison.expected_difference and comparison.explained, comparison.verdict
