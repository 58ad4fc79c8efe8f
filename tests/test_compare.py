"""The comparison layer catches deliberately perturbed runs at the right step."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness.judge.compare import STATES, compare, worst_state
from harness.judge.tolerance import Tolerance
from harness.run.adapters import run_framework
from harness.run.plan import make_plan
from harness.run.trajectory import Trajectory
from harness.spec.catalogue import resolve

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
    differ.expected_difference = "Adam epsilon placement"
    assert differ.state == "disagree"
    assert differ.verdict == "disagree: beyond the convention difference (Adam epsilon placement)"
    differ.explained = True
    assert (differ.state, differ.ok, differ.agree) == ("differ, explained", True, False)
    assert differ.verdict == "differ, explained: Adam epsilon placement"
    d = differ.as_dict()
    assert (d["state"], d["agree"], d["explained"], d["ok"]) == ("differ, explained", False, True, True)
    assert worst_state([]) == "agree" and worst_state(["agree", "differ, explained"]) == "differ, explained"
    assert worst_state(["disagree", "differ, explained", "agree"]) == "disagree" and STATES[0] == "agree"
