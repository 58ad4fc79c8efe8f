"""A scenario whose sums overflow is ill-conditioned by nature (issue 21: seed 12's example 491). The
reference adds finite numbers into inf or nan (``harness.judge.arithmetic.overflowing_sums``), where
the order of the additions decides the value and BLAS kernels and frameworks choose it differently;
the fuzzer counts it with that reason, and a measured cause never matches nan to nan."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.fuzz.oracle import FINDING, ILL_CONDITIONED, OVERFLOWING, judge_example
from harness.fuzz.space import Example
from harness.judge.arithmetic import Watched, overflowing_sums
from harness.pipeline import diagnose, run_scenario
from harness.run.plan import make_plan
from harness.spec.fields import read_toml
from harness.spec.scenario import load_scenarios, parse_scenario

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
OVERFLOW = SCENARIOS / "fuzz-seed12-example491.toml"
CALM = SCENARIOS / "sigmoid-subnormal-input.toml"
FRAMEWORKS = ("numpy", "keras", "torch")


def test_a_sum_of_finite_numbers_into_inf_is_an_overflow_and_an_exp_is_not() -> None:
    """Watched counts a matrix product or a reduction whose finite arguments give inf or nan; not a
    single operation that overflows (exp), and nothing after a non-finite value."""
    big = np.array([[1e308, 1e308]]).view(Watched)
    before = Watched.overflowed[0]
    assert np.isinf((big @ np.array([[2.0], [1.0]])).view(np.ndarray))[0, 0] and Watched.overflowed[0] == before + 1
    assert np.isinf(np.sum(big)) and Watched.overflowed[0] == before + 2
    assert np.isinf(np.exp(np.array([800.0]).view(Watched)).view(np.ndarray))[0]
    assert Watched.overflowed[0] == before + 2
    [calm] = load_scenarios(CALM)
    [overflow] = load_scenarios(OVERFLOW)
    assert overflowing_sums(make_plan(overflow, "float64"))
    assert not overflowing_sums(make_plan(calm, "float64"))
    # in float32 exp(709.78) is already inf: the run leaves the finite numbers before any sum overflows
    assert not overflowing_sums(make_plan(overflow, "float32"))


@pytest.mark.usefixtures("shared_runs")  # the oracle is served the runs the test made
@pytest.mark.slow
def test_the_overflowing_example_is_ill_conditioned_not_a_finding() -> None:
    """keras nan, torch crashed on its nan, numpy finite: the fuzzer counts it ill-conditioned with the
    overflow's reason; no diagnosis names a cause from nan matching nan (keras's softmax of an inf
    sum is nan, as its tanh output is)."""
    raw = read_toml(OVERFLOW, what="scenario file")
    outcome = judge_example(Example(raw, ()), frameworks=FRAMEWORKS, dtypes=("float64",))
    assert (outcome.kind, outcome.reason) == (ILL_CONDITIONED, OVERFLOWING), outcome
    result = run_scenario(parse_scenario(raw, path=OVERFLOW), frameworks=FRAMEWORKS, dtypes=("float64",))
    assert all(d.cause_name not in ("activation applied", "kernel layout") for d in diagnose(result))


@pytest.mark.slow
def test_the_same_network_without_the_overflow_is_judged() -> None:
    """The example's input scaled from 709.78 to 1: nothing overflows, the implementations agree,
    and a disagreement there would be a finding, not ill-conditioned (the reason needs the overflow)."""
    raw = read_toml(OVERFLOW, what="scenario file")
    raw["data"]["X"] = [[1.0, 0.0, 0.0]]
    assert not overflowing_sums(make_plan(parse_scenario(raw, path=OVERFLOW), "float64"))
    outcome = judge_example(Example(raw, ()), frameworks=FRAMEWORKS, dtypes=("float64",))
    assert outcome.kind not in (FINDING, ILL_CONDITIONED), outcome
