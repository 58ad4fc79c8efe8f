"""Divergence diagnosis: first step, localisation within the step (R), and causes named
only when a control run confirms them. Every run is real (NumPy, Keras, torch); the
mismatches are provoked by running one side on a variant of the scenario."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.judge.diagnosis import NO_CAUSE, Diagnosis
from harness.judge.localisation import DRIFT_FRACTION, R_EPSILON, R_THRESHOLD, stage_differences
from harness.judge.result import ScenarioResult
from harness.pipeline import diagnose, run_scenario
from harness.run.adapters import adapter
from harness.run.plan import make_plan
from harness.run.trajectory import trace_stages
from harness.spec.scenario import Scenario, load_scenarios
from harness.spec.tolerance import Tolerance

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
pytestmark = pytest.mark.slow  # real Keras and torch runs and their control runs


def scenario(name: str) -> Scenario:
    """One of the small scenarios in tests/scenarios/ (a sigmoid neuron saturated on binary
    cross-entropy; a 3-4-1 tanh network on teacher data, shuffled mini-batches)."""
    [s] = load_scenarios(SCENARIOS / f"{name}.toml")
    return s


def with_training(s: Scenario, **changes) -> Scenario:
    return replace(s, training=replace(s.training, **changes))


def with_lr(s: Scenario, lr: float) -> Scenario:
    return with_training(s, optimizer=replace(s.training.optimizer, learning_rate=lr))


@pytest.fixture(scope="module")
def diagnosed(request: pytest.FixtureRequest) -> tuple[ScenarioResult, list[Diagnosis]]:
    """(result, diagnoses) of the provoked mismatch ``request.param``, run once per module."""
    bce, mlp = scenario("saturated-bce"), scenario("small-mlp")
    tight32 = {**mlp.tolerances, "float32": Tolerance(rtol=1e-9, atol=0.0)}
    cases = {
        "clip": dict(scenario=bce, frameworks=("numpy", "torch"), dtypes=("float64",),
                     sides={"torch": with_training(bce, clip="keras")}),
        "clip-keras": dict(scenario=with_training(bce, clip="torch"), frameworks=("numpy", "keras"),
                           dtypes=("float64",), sides={"keras": with_training(bce, clip="keras")}),
        "learning-rate": dict(scenario=mlp, frameworks=("numpy", "keras"), dtypes=("float64",),
                              sides={"keras": with_lr(mlp, 0.06)}),
        "float32": dict(scenario=replace(mlp, tolerances=tight32), frameworks=("numpy", "torch"),
                        dtypes=("float64", "float32")),
        "two-at-once": dict(scenario=bce, frameworks=("numpy", "torch"), dtypes=("float64",),
                            sides={"torch": with_lr(with_training(bce, clip="keras"), 0.2)}),
        "unknown": dict(scenario=mlp, frameworks=("numpy", "torch"), dtypes=("float64",),
                        sides={"torch": replace(mlp, layers=(replace(mlp.layers[0], activation="sigmoid"),
                                                             *mlp.layers[1:]))}),
    }
    result = run_scenario(**cases[request.param])
    return result, diagnose(result)


# --- the R rate of change, on hand-made traces -----------------------------------

def test_rate_of_change_flags_the_stage_that_introduces_the_difference():
    stages = ["params w", "output layers.0", "loss", "gradient w", "updated w"]
    a = {s: np.array([1.0, 2.0]) for s in stages}
    b = dict(a)
    b["loss"] = np.array([1.0, 2.0 * (1 + 1e-5)])  # d = 1e-5 / 1.00001 ~ 1e-5
    b["gradient w"] = b["loss"]
    b["updated w"] = b["loss"]
    diffs = stage_differences(a, b, stages, Tolerance(rtol=1e-12, atol=0.0))
    d = [s.max_rel for s in diffs]
    assert d[:2] == [0.0, 0.0]
    assert diffs[2].rate == pytest.approx((d[2] - 0.0) / (0.0 + R_EPSILON))
    assert diffs[2].rate > R_THRESHOLD and diffs[3].rate == 0.0
    assert [s.beyond_tolerance for s in diffs] == [False, False, True, True, True]


# --- trace_step replays the run exactly ------------------------------------------

@pytest.mark.parametrize("framework", ["numpy", "keras", "torch"])
def test_trace_step_reproduces_the_recorded_step(framework):
    s = scenario("small-mlp")
    plan = make_plan(s, "float64")
    module = adapter(framework)
    run = module.run(plan)
    step = 6  # the third batch of the second epoch: shuffled order, optimizer already stepped
    trace = module.trace_step(plan, step)
    assert set(trace) == set(trace_stages(s))
    for name in s.param_names():
        np.testing.assert_array_equal(trace[f"params {name}"], run.params_before(step)[name])
        np.testing.assert_array_equal(trace[f"updated {name}"], run.params[name][step])
        np.testing.assert_array_equal(trace[f"gradient {name}"], run.grads[name][step])
    assert float(trace["loss"]) == float(run.losses[step])
    assert trace["output layers.1"].shape == (16, 1)


# --- named causes, each confirmed by its control run -----------------------------

EXPECTED = [
    # case, pair, first step, first quantity, stage where the difference appears, cause
    ("clip", "numpy-torch", 0, "loss", "loss", "cross-entropy clipping"),
    ("clip-keras", "numpy-keras", 0, "loss", "loss", "cross-entropy clipping"),
    ("learning-rate", "numpy-keras", 0, "layers.0.kernel", "updated layers.0.kernel", "learning rate"),
]


@pytest.mark.parametrize("diagnosed,pair,step,quantity,stage,cause", EXPECTED, ids=[e[0] for e in EXPECTED],
                         indirect=["diagnosed"], scope="module")
def test_provoked_mismatch_is_diagnosed(diagnosed, pair, step, quantity, stage, cause):
    result, diagnoses = diagnosed
    assert len(diagnoses) == 1
    d = diagnoses[0]
    assert d.kind == "disagree" and d.step == step and d.quantity == quantity
    assert d.comparison.pair == pair and not d.comparison.agree
    assert d.comparison.first_divergent_step == step
    assert d.comparison.mismatch.quantity == quantity
    assert d.localisation.step == step
    assert d.localisation.appears_at.stage == stage
    assert d.cause is not None and d.cause.name == cause
    assert d.confirmed_by.agrees
    # the control re-ran the pair with the setting aligned: both sides ran the same training
    control = d.confirmed_by.control
    assert control.scenario_a.training == control.scenario_b.training


@pytest.mark.parametrize("diagnosed", ["float32"], indirect=True, scope="module")
def test_float32_rounding_growth_is_confirmed_by_the_float64_run(diagnosed):
    result, diagnoses = diagnosed
    assert [(d.comparison.pair, d.comparison.dtype) for d in diagnoses] == [("numpy-torch", "float32")]
    d = diagnoses[0]
    assert d.cause.name == "float32 rounding growth"
    assert d.confirmed_by.control.dtype == "float64"
    assert d.confirmed_by.agrees
    # the control reused the float64 runs already made for this report (same numbers)
    assert d.confirmed_by.comparison.max_abs == result.comparison("numpy", "torch", "float64").max_abs
    # float32 rounding is a few ulps: no stage jumps by more than R_THRESHOLD at the first step
    assert all(s.max_rel < 1e-5 for s in d.localisation.stages)


@pytest.mark.parametrize("diagnosed", ["two-at-once"], indirect=True, scope="module")
def test_two_differences_at_once_name_no_cause(diagnosed):
    """Each control aligns one setting; with two settings different none agrees, so no cause is named."""
    _, diagnoses = diagnosed
    d = diagnoses[0]
    assert d.cause is None and d.cause_name == NO_CAUSE
    tried = {r.control.description for r in d.controls}
    assert any("clip" in t for t in tried) and any("learning rate" in t for t in tried)
    assert all(r.comparison is not None and not r.comparison.agree for r in d.controls)


@pytest.mark.parametrize("diagnosed", ["unknown"], indirect=True, scope="module")
def test_a_difference_outside_the_registry_names_no_cause(diagnosed):
    """A wrong activation on one side (tanh against sigmoid): found in the forward pass, no cause named."""
    _, diagnoses = diagnosed
    d = diagnoses[0]
    assert d.cause is None and d.controls == []
    assert d.comparison.first_divergent_step == 0 and d.comparison.mismatch.quantity == "loss"
    assert d.localisation.appears_at.stage == "output layers.0"
    assert d.localisation.first_beyond.stage == "output layers.0"


def test_drifting_float32_pair_is_diagnosed_at_its_closest_step():
    """An agreeing pair whose tolerance is scaled so that it uses 0.75 of it: a drift, in float32,
    explained by float32 rounding (its float64 run uses a tiny fraction of the float64 tolerance)."""
    mlp = scenario("small-mlp")
    first = run_scenario(mlp, frameworks=("numpy", "torch"), dtypes=("float32",))
    tol = mlp.tolerances["float32"]
    [c] = first.comparisons
    step, quantity, fraction = c.closest
    assert 0 < fraction < DRIFT_FRACTION  # the default float32 tolerance leaves a wide margin here
    k = fraction / 0.75  # allowed = atol + rtol * scale + ulps * eps * M is linear in (atol, rtol, ulps)
    scaled = replace(mlp, tolerances={**mlp.tolerances, "float32": replace(tol, rtol=tol.rtol * k, atol=tol.atol * k,
                                                                           ulps=tol.ulps * k)})
    result = run_scenario(scaled, frameworks=("numpy", "torch"), dtypes=("float32", "float64"))
    assert result.agree
    [d] = diagnose(result)
    assert (d.kind, d.step, d.quantity) == ("drift", step, quantity)
    assert d.fraction == pytest.approx(0.75)
    assert d.localisation.step == step and d.localisation.stages
    assert d.cause.name == "float32 rounding growth" and d.confirmed_by.fraction < DRIFT_FRACTION


def test_pairs_far_from_their_tolerance_are_not_diagnosed():
    result = run_scenario(scenario("small-mlp"), frameworks=("numpy", "torch"), dtypes=("float64",))
    assert result.agree and diagnose(result) == []
