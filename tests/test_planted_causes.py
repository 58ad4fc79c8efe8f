"""Causes measured, each planted: a defect in ONE implementation (or in the plan every one shares)
must give the right suspect, step and stage and the named cause, confirmed by its measurement.

* the shared plan (``harness.judge.plan_checks``): one permutation reused every epoch, a wrong
  batch size, initial draws off their declaration: a harness fault, whatever the pairs say;
* a record one step late (Keras writing its parameters before ``apply_gradients``): named as such,
  never as an effective learning rate of 0;
* weight decay in torch: an extra term proportional to the weights, lambda measured;
* tanh's derivative evaluated at the wrong point in torch: reproduced by the reference's backprop
  with that derivative swapped in;
* the reference's MSE gradient without its factor 2 on a 2-element kernel: a constant factor found
  over steps 0..3 at the same parameters;
* the learning rate applied to the gradient before the step: the record's gradient scaled;
* a crash in the reference: named with its file, line and function.

keras and torch run in this process (``inline()``): a monkeypatch lives in one process.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.judge.compare import DISAGREE
from harness.judge.plan_checks import plan_faults, plan_notes
from harness.render.report import verdict
from harness.run import runner
from harness.run.adapters.workers import inline
from harness.run.plan import TrainingPlan, make_plan
from harness.run.runner import run_scenario
from harness.spec.catalogue import resolve
from harness.spec.initializers import Initializer
from harness.spec.scenario import Scenario, load_scenarios

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
CATALOGUE = Path(__file__).resolve().parent.parent / "scenarios"


def scenario(name: str) -> Scenario:
    [s] = load_scenarios(SCENARIOS / f"{name}.toml")
    return s


# --- the shared plan ------------------------------------------------------------------

def _every_plan() -> list[TrainingPlan]:
    files = sorted(CATALOGUE.glob("*.toml")) + sorted((CATALOGUE / "keys").rglob("*.toml")) + sorted(
        SCENARIOS.glob("*.toml"))
    plans = []
    for f in files:
        try:
            found = load_scenarios(f)
        except Exception:  # an answer key, not a scenario file
            continue
        plans += [make_plan(s, dtype) for s in found for dtype in ("float64", "float32")]
    return plans


def test_the_plan_invariants_never_fire_on_the_catalogue() -> None:
    plans = _every_plan()
    assert len(plans) >= 100
    assert [f for p in plans for f in plan_faults(p)] == []


def test_what_the_plan_invariants_cannot_test_is_said() -> None:
    notes = plan_notes(make_plan(resolve("xor-perceptron"), "float64"))
    assert "`layers.1.bias` (normal): 1 values, too few for a statistical check (< 30); checked finite only" in notes
    notes = plan_notes(make_plan(resolve("minibatch-diverging"), "float64"))
    assert notes == ["12 rows over 1000 epochs: two epochs in one order are too likely by chance; tested only that "
                     "not every epoch has one order"]


def _reused_order(plan: TrainingPlan) -> TrainingPlan:
    return replace(plan, orders=np.stack([plan.orders[0]] * plan.orders.shape[0]))


def test_each_plan_invariant_fires_on_its_own_break() -> None:
    plan = make_plan(scenario("small-mlp"), "float64")
    assert plan_faults(plan) == []
    reused = plan_faults(_reused_order(plan))
    assert reused == ["shared plan: float64: every one of the 5 epochs has one row order, where shuffle = true "
                      "declares independent shuffles of the 64 rows (probability (1/64!)^4 by chance)"]
    orders = plan.orders.copy()
    orders[3] = orders[1]  # one epoch repeated
    [repeated] = plan_faults(replace(plan, orders=orders))
    assert "epochs 1 and 3 share one row order" in repeated
    orders = plan.orders.copy()
    orders[2, 5] = orders[2, 6]  # a row twice, one missing
    assert plan_faults(replace(plan, orders=orders)) == [
        "shared plan: float64: epoch 2's order is not a permutation of the 64 rows (1 rows missing, 1 repeated)"]
    bounds = tuple((s, min(s + 15, 64)) for s in range(0, 64, 15))
    [batches] = plan_faults(replace(plan, bounds=bounds))
    assert "where batch_size 16 on 64 rows declares 4 consecutive batches of 16 rows" in batches
    unshuffled = make_plan(scenario("tiny-linear"), "float64")
    assert plan_faults(replace(unshuffled, orders=np.array([[1, 0]]))) == [
        "shared plan: float64: the rows are reordered where shuffle = false declares their order in the data"]
    params = dict(plan.initial_params, **{"layers.0.bias": plan.initial_params["layers.0.bias"] + 1e-3})
    assert plan_faults(replace(plan, initial_params=params)) == [
        "shared plan: float64: `layers.0.bias` does not hold the values the file gives"]


def _drawn(init: Initializer, values: np.ndarray) -> list[str]:
    s = scenario("tiny-linear")
    layer = replace(s.layers[0], units=values.shape[1], kernel=None, kernel_initializer=init, use_bias=False, bias=None)
    plan = make_plan(replace(s, layers=(layer,)), "float64")
    return plan_faults(replace(plan, initial_params=dict(plan.initial_params, **{"layers.0.kernel": values})))


def test_initial_draws_are_checked_against_their_declaration(rng: np.random.Generator) -> None:
    assert _drawn(Initializer("zeros", {}), np.zeros((2, 200))) == []
    assert _drawn(Initializer("constant", {"value": 0.5}), np.full((2, 200), 0.5)) == []
    assert "is not all 0.5" in _drawn(Initializer("constant", {"value": 0.5}), np.full((2, 200), 0.25))[0]
    normal = Initializer("normal", {"seed": 1, "mean": 0.0, "stddev": 0.1})
    assert _drawn(normal, rng.normal(0, 0.1, (2, 200))) == []
    [std] = _drawn(normal, rng.normal(0, 1.0, (2, 200)))  # the stddev ignored: N(0, 1)
    assert "sample standard deviation" in std and "of the declared 0.1" in std
    [mean] = _drawn(normal, rng.normal(0.1, 0.1, (2, 200)))
    assert "sample mean" in mean
    assert _drawn(normal, rng.normal(0, 1.0, (2, 10))) == []  # too few for statistics: said by plan_notes
    glorot = Initializer("glorot_uniform", {"seed": 1})
    limit = np.sqrt(6 / 202)
    assert _drawn(glorot, rng.uniform(-limit, limit, (2, 200))) == []
    assert "outside the declared" in _drawn(glorot, rng.uniform(-2 * limit, 2 * limit, (2, 200)))[0]
    [off_centre] = _drawn(Initializer("uniform", {"seed": 1, "minval": -1.0, "maxval": 1.0}),
                          rng.uniform(0, 1, (2, 200)))
    assert "sample mean" in off_centre


@pytest.mark.slow
def test_one_permutation_reused_every_epoch_is_a_harness_fault() -> None:
    """The plan maker reuses epoch 0's permutation in every epoch: every implementation trains on
    the same wrong order, every pair agrees, and the run still fails, naming the shared plan."""
    original = make_plan
    with inline(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "make_plan", lambda s, dtype: _reused_order(original(s, dtype)))
        result = run_scenario(scenario("small-mlp"), dtypes=("float64",))
    assert all(c.state != DISAGREE for c in result.comparisons)  # the pairs cannot see it
    assert not result.ok and not result.agree
    fault = ("shared plan: float64: every one of the 5 epochs has one row order, where shuffle = true declares "
             "independent shuffles of the 64 rows (probability (1/64!)^4 by chance)")
    assert result.plan_faults == [fault]
    assert verdict(result) == f"HARNESS FAULT: {fault}"


