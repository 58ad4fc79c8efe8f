"""Every catalogue scenario: every compared pair of implementations agrees at every step, per
dtype (or, for an optimizer whose Keras and torch arithmetic differ, differs only by that
convention, each framework agreeing with the reference run in its own convention)."""
from __future__ import annotations

import pytest

from harness.run.adapters import FRAMEWORKS
from harness.run.runner import implementations, planned_pairs
from harness.spec.catalogue import catalogue_scenarios
from harness.spec.scenario import DTYPES

CATALOGUE = catalogue_scenarios()

CASES = [pytest.param(s.name, a, b, dtype, id=f"{s.name}[{a}-{b}-{dtype}]")
         for s in CATALOGUE for dtype in DTYPES for a, b in planned_pairs(s)]
RUNS = [pytest.param(s.name, label, dtype, id=f"{s.name}[{label}-{dtype}]")
        for s in CATALOGUE for dtype in DTYPES for label in implementations(s, FRAMEWORKS)]


@pytest.mark.parametrize("catalogue_result, label, dtype", RUNS, indirect=["catalogue_result"], scope="session")
def test_run_completes(catalogue_result, label, dtype):
    run, name = catalogue_result.runs[(label, dtype)], catalogue_result.scenario.name
    assert run.status == "ok", f"{name}: {label} ({dtype}) {run.status}: {run.message}"
    assert run.steps > 0 or not catalogue_result.scenario.trains


@pytest.mark.parametrize("catalogue_result, a, b, dtype", CASES, indirect=["catalogue_result"], scope="session")
def test_pair_agrees_every_step(catalogue_result, a, b, dtype):
    result, name = catalogue_result, catalogue_result.scenario.name
    comparison = result.comparison(a, b, dtype)
    assert comparison is not None, f"{name}: no comparison of {a} and {b} ({dtype})"
    assert comparison.steps_a == comparison.steps_b, comparison.note
    assert comparison.ok, comparison.describe_failure(name)
    if not comparison.agree:  # only an explained convention difference may remain
        assert comparison.expected_difference and comparison.explained, comparison.verdict
