"""The update-rule check's squares in the run's dtype where they leave the normal numbers (issue 21:
seed 12's example 2215). A float32 gradient of 5.8e25 squares to inf, so RMSprop's second moment is
inf and its step 0 in every implementation; the check, squaring exactly, expected a full step and
called the reference's update wrong."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from harness.fuzz.oracle import FINDING, judge_example
from harness.fuzz.space import Example
from harness.judge.textbook import Rule
from harness.pipeline import run_scenario
from harness.spec.fields import read_toml
from harness.spec.scenario import load_scenarios

FILE = Path(__file__).resolve().parent / "scenarios" / "fuzz-seed12-example2215.toml"


@pytest.mark.parametrize("convention", ["keras", "torch"])
def test_a_square_that_overflows_the_dtype_stops_rmsprop_s_step(convention: str) -> None:
    """float32: the square of 5.8e25 is inf, the step 0; float64 holds it, the step is the full
    lr / sqrt(1 - rho); a gradient of 1 steps alike in both."""
    def step(dtype: str, g: float) -> float:
        rule = Rule("rmsprop", convention, 1.0, {"rho": 0.9}, dtype)
        low, _ = rule.update(1, "w", [Decimal(1)], [Decimal(g)])
        return float(low[0]) - 1.0
    assert step("float32", 5.8e25) == 0.0
    assert step("float64", 5.8e25) == pytest.approx(-1 / 0.1 ** 0.5, rel=1e-6)
    assert step("float32", 1.0) == pytest.approx(step("float64", 1.0), rel=1e-12)


@pytest.mark.usefixtures("shared_runs")  # the oracle is served the runs the test made
@pytest.mark.slow
def test_the_example_s_reference_runs_follow_their_rules_and_it_is_no_finding() -> None:
    [scenario] = load_scenarios(FILE)
    result = run_scenario(scenario, frameworks=("numpy", "keras", "torch"), dtypes=("float32",))
    checks = {label: check for (label, dtype), check in result.rule_checks.items()}
    assert checks and all(check.ok for check in checks.values()), {k: c.describe() for k, c in checks.items()}
    outcome = judge_example(Example(read_toml(FILE, what="scenario file"), ()),
                            frameworks=("numpy", "keras", "torch"), dtypes=("float32",))
    assert outcome.kind != FINDING, outcome


@pytest.mark.parametrize("convention", ["keras", "torch"])
def test_an_underflowing_square_stays_exact_and_an_overflow_twice_raises_nothing(convention: str) -> None:
    """A centered RMSprop on a gradient whose square underflows float64 (1e-170): ``v - a * a`` stays
    non-negative, the step finite (seed 13's examples 14 and 20 raised, then gave nan, when only the
    square was held in the dtype). Adam on two gradients whose squares overflow float32: ``inf - inf``
    is NaN as IEEE arithmetic gives it, never an exception."""
    rule = Rule("rmsprop", convention, 0.01, {"centered": True, "momentum": 0.5}, "float64")
    low, high = rule.update(1, "w", [Decimal(1)], [Decimal(1e-170)])
    assert low == high and low[0].is_finite() and float(low[0]) <= 1.0
    adam = Rule("adam", convention, 0.5, {}, "float32")
    for t in (1, 2):
        ends = adam.update(t, "w", [Decimal(1)], [Decimal(5.8e25)])
    assert all(isinstance(x, Decimal) for end in ends for x in end)
