"""The comparison layer catches deliberately perturbed runs at the right step."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness.run.adapters import run_framework
from harness.judge.compare import compare
from harness.run.plan import make_plan
from harness.judge.tolerance import Tolerance
from harness.run.trajectory import Trajectory
from tests.conftest import CATALOGUE_BY_NAME

TIGHT = Tolerance(rtol=1e-12, atol=1e-14)


def with_learning_rate(scenario, lr):
    optimizer = dataclasses.replace(scenario.training.optimizer, learning_rate=lr)
    return dataclasses.replace(scenario, training=dataclasses.replace(scenario.training, optimizer=optimizer))


@pytest.mark.parametrize("framework", ["numpy", "torch"])
def test_wrong_learning_rate_disagrees_at_step_zero(framework):
    """A 0.1% wrong learning rate changes the first update: the first divergent step is 0, in a parameter."""
    scenario = CATALOGUE_BY_NAME["softmax-classifier"]
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


def test_perturbed_sample_disagrees_at_the_batch_that_holds_it():
    """minibatch-regression trains on rows 0-2, then 3-5, ...: a perturbed row 4 first shows at step 1."""
    scenario = CATALOGUE_BY_NAME["minibatch-regression"]
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
