"""The comparison layer catches deliberately perturbed runs at the right step."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness.judge.compare import STATES, compare, worst_state
from harness.run.adapters import run_framework
from harness.run.labels import with_convention
from harness.run.plan import make_plan
from harness.run.trajectory import Trajectory
from harness.spec.catalogue import resolve
from harness.spec.tolerance import DEFAULT_TOLERANCES, EPS32, Tolerance, compare_elements

TIGHT = Tolerance(rtol=1e-12, atol=1e-14)


def with_learning_rate(scenario, lr):
    optimizer = dataclasses.replace(scenario.training.optimizer, learning_rate=lr)
    return dataclasses.replace(scenario, training=dataclasses.replace(scenario.training, optimizer=optimizer))


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["numpy", "torch"])
def test_wrong_learning_rate_disagrees_at_step_zero(framework):
    """A 0.1% wrong learning rate changes the first update: the first divergent step is 0, in a parameter."""
    scenario = resolve("softmax-classifier")
    good = run_framework("numpy", make_plan(scenario, "float64"))
    bad = run_framework(framework, make_plan(with_learning_rate(scenario, 0.1001), "float64"))
    c = compare(good, bad, TIGHT)
    assert not c.agree
    assert c.first_divergent_step == 0
    assert c.mismatch.quantity.startswith("layers.0.")
    assert c.quantities["loss"].first_bad_step == 1  # the loss at step 0 precedes the first update
    message = c.describe_failure("softmax-classifier")
    for part in ("step 0", c.mismatch.quantity, "rtol=1e-12", "atol=1e-14", "last step that agreed: none"):
        assert part in message


@pytest.mark.slow
def test_perturbed_sample_disagrees_at_the_batch_that_holds_it():
    """minibatch-regression trains on rows 0-2, then 3-5, ...: a perturbed row 4 first shows at step 1."""
    scenario = resolve("minibatch-regression")
    plan = make_plan(scenario, "float64")
    y = plan.y.copy()
    y[4, 0] += 1e-6
    perturbed = dataclasses.replace(plan, y=y)
    c = compare(run_framework("numpy", plan), run_framework("torch", perturbed), TIGHT)
    assert not c.agree
    assert c.first_divergent_step == 1
    assert c.quantities["loss"].first_bad_step == 1
    assert "last step that agreed: 0" in c.describe_failure("minibatch-regression")


def _trajectory(losses, w):
    t = Trajectory(framework="x", dtype="float64")
    t.losses = np.asarray(losses, dtype=float)
    t.params = {"w": np.asarray(w, dtype=float).reshape(-1, 1)}
    t.grads = {"w": np.zeros((len(losses), 1))}
    return t


def test_nan_and_inf_reached_together_agree_but_not_apart():
    a = _trajectory([1.0, np.inf, np.nan], [1.0, np.inf, np.nan])
    assert compare(a, _trajectory([1.0, np.inf, np.nan], [1.0, np.inf, np.nan]), TIGHT).agree
    c = compare(a, _trajectory([1.0, 1e300, np.nan], [1.0, 1e300, np.nan]), TIGHT)
    assert not c.agree and c.first_divergent_step == 1


def test_different_step_counts_disagree_where_the_shorter_stopped():
    c = compare(_trajectory([3.0, 2.0, 1.0], [1, 2, 3]), _trajectory([3.0, 2.0], [1, 2]), TIGHT)
    assert not c.agree and c.first_divergent_step == 2
    assert "early stop" in c.note


def test_tolerance_is_relative_to_the_larger_magnitude():
    base = _trajectory([100.0], [1.0])
    assert compare(base, _trajectory([100.0 + 5e-11], [1.0]), TIGHT).agree
    assert not compare(base, _trajectory([100.0 + 5e-10], [1.0]), TIGHT).agree


def test_per_step_series_and_closest_approach_match_a_direct_computation():
    """The per-step series kept on the Comparison: over the loss, the parameter and the layer
    outputs (initial ones at step 0, final ones at the last step), max |a - b| and max |a - b| /
    allowed per step; a nan against a number is infinitely far. Computed here element by element."""
    a = _trajectory([4.0, 2.0, 1.0, 0.5], [1.0, 0.5, 0.25, 0.125])
    b = _trajectory([4.0, 2.0 + 3e-12, 1.0, np.nan], [1.0 + 3e-14, 0.5, 0.25, 0.125])
    a.outputs_initial, b.outputs_initial = [np.array([[1.0, 2.0]])], [np.array([[1.0, 2.0 + 1e-13]])]
    a.outputs_final, b.outputs_final = [np.array([[3.0, -5.0]])], [np.array([[3.0, -5.0 - 2e-11]])]
    c = compare(a, b, TIGHT)

    def element(x, y):
        if x == y or (np.isnan(x) and np.isnan(y)):
            return 0.0, 0.0
        diff = abs(x - y) if not (np.isnan(x) or np.isnan(y)) else np.inf
        scale = max(abs(v) for v in (x, y) if np.isfinite(v))
        return diff, diff / (TIGHT.atol + TIGHT.rtol * scale)

    values = {s: [(a.losses[s], b.losses[s]), (a.params["w"][s, 0], b.params["w"][s, 0])] for s in range(4)}
    values[0] += list(zip(a.outputs_initial[0].ravel(), b.outputs_initial[0].ravel()))
    values[3] += list(zip(a.outputs_final[0].ravel(), b.outputs_final[0].ravel()))
    expected = [[element(x, y) for x, y in values[s]] for s in range(4)]
    np.testing.assert_array_equal(c.step_max_abs, [max(d for d, _ in e) for e in expected])
    np.testing.assert_array_equal(c.step_used, [max(u for _, u in e) for e in expected])
    assert c.step_max_abs[3] == np.inf and c.step_used[1] == pytest.approx(3e-12 / (1e-14 + 2e-12), rel=1e-3)
    assert c.closest == (3, "loss", np.inf)

    b.losses[3] = 0.5  # without the nan the final outputs come closest: 2e-11 against 1e-14 + 5e-12 allowed
    step, quantity, fraction = compare(a, b, TIGHT).closest
    assert (step, quantity) == (3, "output layers.0 (end)")
    assert fraction == pytest.approx(2e-11 / (1e-14 + 5e-12), rel=1e-3)


def test_every_pair_is_in_exactly_one_of_three_states():
    """agree (within tolerance), differ, explained (only an optimizer convention the reference
    explains) or disagree; ``ok`` is agree or differ, explained; the JSON carries all three."""
    agree = compare(_trajectory([1.0], [1.0]), _trajectory([1.0], [1.0]), TIGHT)
    assert (agree.state, agree.ok, agree.verdict) == ("agree", True, "agree")
    differ = compare(_trajectory([1.0], [1.0]), _trajectory([1.0], [1.1]), TIGHT)
    assert (differ.state, differ.ok, differ.verdict) == ("disagree", False, "disagree")
    differ.differences = ["Adam epsilon placement"]
    assert differ.state == "disagree"
    assert differ.verdict == "disagree: beyond the known difference (Adam epsilon placement)"
    differ.explained = True
    assert (differ.state, differ.ok, differ.agree) == ("differ, explained", True, False)
    assert differ.verdict == "differ, explained: Adam epsilon placement"
    d = differ.as_dict()
    assert (d["state"], d["agree"], d["explained"], d["ok"]) == ("differ, explained", False, True, True)
    assert worst_state([]) == "agree" and worst_state(["agree", "differ, explained"]) == "differ, explained"
    assert worst_state(["disagree", "differ, explained", "agree"]) == "disagree" and STATES[0] == "agree"


# --- the magnitude term: a float32 quantity crossing zero (issue 11, item 6) ---------------------------

def test_magnitude_term_judges_a_step_by_the_largest_value_so_far_never_a_later_one():
    """allowed = atol + rtol*max(|a|,|b|) + ulps*eps*M, M = the quantity's largest |value| up to the step."""
    tol = DEFAULT_TOLERANCES["float32"]
    assert (tol.ulps, tol.eps, tol.mtol) == (16.0, EPS32, 16.0 * EPS32)
    assert tol.describe() == "rtol 1e-05, atol 1e-07 + 16 eps32 x M"
    assert DEFAULT_TOLERANCES["float64"].describe() == "rtol 1e-12, atol 1e-14 + 16 eps64 x M"
    # A parameter falls from 1 through 0: 1e-6 apart near zero is 8.4 ulps of the 1 it had reached.
    a = _trajectory([1.0, 1.0, 1.0], [1.0, 0.5, 1e-3])
    b = _trajectory([1.0, 1.0, 1.0], [1.0, 0.5, 1e-3 + 1e-6])
    c = compare(a, b, tol)
    assert c.agree and c.quantities["w"].magnitude == 1.0
    assert not compare(a, b, dataclasses.replace(tol, ulps=0.0)).agree  # the plain rule: 1e-6 > 1.1e-7
    assert c.tolerance == tol.describe() and c.as_dict()["mtol"] == tol.mtol
    # The same values in the other order: near zero first, large later. Step 0 is judged with M = 1e-3.
    c = compare(_trajectory([1.0, 1.0], [1e-3, 1.0]), _trajectory([1.0, 1.0], [1e-3 + 1e-6, 1.0]), tol)
    assert not c.agree and c.first_divergent_step == 0
    assert c.mismatch.magnitude == pytest.approx(1e-3 + 1e-6)
    assert "+ 1.91e-06 x M, M = 0.001" in c.describe_failure("x")
    # One array at one moment (no steps): M is its own largest magnitude.
    e = compare_elements(np.array([5.0, 1e-9]), np.array([5.0, 1e-9 + 5e-6]), tol)
    assert e.allowed[1] == pytest.approx(1e-7 + 1e-5 * (1e-9 + 5e-6) + 16 * EPS32 * 5.0)
    assert not e.bad.any()


def _momentum(dtype, lr_factor=1.0):
    """minibatch-momentum in the torch convention (numpy and torch compute the same arithmetic)."""
    scenario = with_convention(resolve("minibatch-momentum"), "torch")
    if lr_factor != 1.0:
        scenario = with_learning_rate(scenario, scenario.training.optimizer.learning_rate * lr_factor)
    return make_plan(scenario, dtype)


def _as_float32(run: Trajectory) -> Trajectory:
    """A float64 run's values rounded to float32: the exact maths (to ~1e-16) as float32 holds it."""
    def f32(arrays):
        return {k: v.astype(np.float32) for k, v in arrays.items()}
    return dataclasses.replace(run, dtype="float32", losses=run.losses.astype(np.float32), params=f32(run.params),
                               grads=f32(run.grads), initial_params=f32(run.initial_params))


@pytest.mark.slow
def test_float32_bias_crossing_zero_agrees_and_a_wrong_learning_rate_is_still_caught():
    """Issue 11, item 6. minibatch-momentum in float32: the bias rises to 0.57, falls through zero
    (step 27) and settles at 0.1; two float32 runs differ there by a few ulps of the 0.57 reached,
    which the plain atol + rtol test calls a disagreement. Which pairs it flags depends on the BLAS
    kernel (issue 19; measured: numpy against torch from step 15, |diff| 4.1e-7, with OpenBLAS'
    Haswell and Zen kernels, not at all with SkylakeX; numpy's and torch's float32 runs against the
    float64 maths rounded to float32 from steps 15-27 and 25 on all three). What holds on every
    kernel, asserted here: with the magnitude term every pair agrees over all 156 steps; wherever the
    plain rule raises an alarm, it is near zero (|value| < 5% of the run's magnitude), where the term
    acts; and a float32 run against the exact maths raises one (float32 arithmetic, not a kernel:
    ~1.7 ulps of 0.57 is all the plain rule allows near zero). A learning rate off by 0.1%, 0.01% or
    even 1e-6 relative in torch (the smallest still above float32 noise) is still caught, from the
    first update where it exceeds rounding, and so is a defect of the false alarm's size planted at
    the crossing."""
    tol = DEFAULT_TOLERANCES["float32"]
    plain = dataclasses.replace(tol, ulps=0.0)
    reference = run_framework("numpy", _momentum("float32"))
    torch_run = run_framework("torch", _momentum("float32"))
    exact = _as_float32(run_framework("numpy", _momentum("float64")))
    assert reference.steps == torch_run.steps == exact.steps == 156
    pairs = {"numpy-torch": (reference, torch_run), "exact-numpy": (exact, reference),
             "exact-torch": (exact, torch_run)}
    alarms = []
    for name, (a, b) in pairs.items():
        with_term = compare(a, b, tol)
        assert with_term.agree, (name, with_term.describe_failure(name))
        old = compare(a, b, plain)
        if not old.agree:  # a false alarm the term removes: near zero, in the bias that crosses it
            alarms.append(name)
            magnitude = with_term.quantities[old.mismatch.quantity].magnitude
            assert old.mismatch.quantity == "layers.0.bias" and abs(old.mismatch.a) < 0.05 * magnitude, name
    assert {"exact-numpy", "exact-torch"} & set(alarms), alarms  # the term had an alarm to remove

    for factor, first in ((1.001, 0), (1.0001, 0), (1 + 1e-6, 15)):
        c = compare(reference, run_framework("torch", _momentum("float32", factor)), tol)
        assert not c.agree, factor
        assert c.first_divergent_step <= first, (factor, c.first_divergent_step)

    # A defect of the false alarm's own size, planted where the bias is near zero: torch's bias
    # after step 27 pushed by 30 ulps of its run magnitude (2e-6), as a wrong-signed small gradient
    # would. The term allows 16 ulps (1.1e-6): caught at that step.
    planted = dataclasses.replace(torch_run, params={k: v.copy() for k, v in torch_run.params.items()})
    planted.params["layers.0.bias"][27] += 30 * EPS32 * 0.57
    c = compare(reference, planted, tol)
    assert not c.agree and c.first_divergent_step == 27 and c.mismatch.quantity == "layers.0.bias"


@pytest.mark.slow
def test_float64_stays_tight_on_the_same_run():
    """The term adds 16 eps64 x M (3.6e-15 x M) in float64: numpy and torch agree on minibatch-momentum,
    and a learning rate 1 + 1e-11 times too large is caught at step 0."""
    tol = DEFAULT_TOLERANCES["float64"]
    reference = run_framework("numpy", _momentum("float64"))
    assert compare(reference, run_framework("torch", _momentum("float64")), tol).agree
    c = compare(reference, run_framework("torch", _momentum("float64", 1 + 1e-11)), tol)
    assert not c.agree and c.first_divergent_step == 0
