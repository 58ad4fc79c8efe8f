"""A worker keeps each Keras model it built (``harness.run.adapters.keras_model.model_for``) and
resets it for the next use: a scenario run after others of the same network gives, bit for bit, what
it gives in a fresh worker. Adam (with AMSGrad) carries slots and a step counter from one step to the
next, so a leaked optimizer state changes every step; the planted test shows the check catches one."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from harness.run.adapters import adapter, keras_model, keras_tf
from harness.run.adapters.workers import stop
from harness.run.plan import TrainingPlan, make_plan
from harness.spec.catalogue import resolve

pytestmark = pytest.mark.slow  # real Keras runs, on three backends


def _plans() -> tuple[TrainingPlan, TrainingPlan, TrainingPlan]:
    """A: tanh-adam; B: the same network and training on other data (so the same kept model);
    C: another network (SGD with momentum), cut short."""
    a = resolve("tanh-adam")
    b = replace(a, name="tanh-adam-other-data", data=replace(a.data, options={**a.data.options, "seed": 7}))
    c = resolve("minibatch-momentum")
    return make_plan(a, "float64"), make_plan(b, "float64"), make_plan(c, "float32").first_steps(40)


def _arrays(run: object, trace: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {f"loss {i}": np.asarray(v) for i, v in enumerate(getattr(run, "losses"))}
    for kind in ("params", "grads"):
        out.update({f"{kind} {k}": v for k, v in getattr(run, kind).items()})
    out.update({f"outputs {i}": v for i, v in enumerate(getattr(run, "outputs_final"))})
    out.update({f"trace {k}": v for k, v in trace.items()})
    return out


def _differing(fresh: dict[str, np.ndarray], reused: dict[str, np.ndarray]) -> list[str]:
    assert fresh.keys() == reused.keys()
    return [k for k in fresh if fresh[k].tobytes() != reused[k].tobytes()]


def _after_others(implementation: str, a: TrainingPlan, b: TrainingPlan, c: TrainingPlan) -> dict[str, np.ndarray]:
    """B's run and its step-3 trace after A's run, A's trace, C's run and a forward pass of A."""
    impl = adapter(implementation)
    impl.run(a)
    impl.trace_step(a, 5)
    impl.run(c)
    impl.forward(a.scenario, a.initial_params, a.X)
    return _arrays(impl.run(b), impl.trace_step(b, 3))


@pytest.mark.parametrize("implementation", ["keras", "keras@jax", "keras@torch"])
def test_a_scenario_after_others_in_one_worker_is_the_scenario_in_a_fresh_worker(implementation):
    a, b, c = _plans()
    assert keras_model.network_key(a.scenario) == keras_model.network_key(b.scenario)  # one kept model
    assert not np.array_equal(a.X, b.X)
    stop(implementation)
    impl = adapter(implementation)
    fresh = _arrays(impl.run(b), impl.trace_step(b, 3))  # the worker's first model
    assert _differing(fresh, _after_others(implementation, a, b, c)) == []


def test_an_optimizer_state_left_from_the_previous_run_is_caught(monkeypatch):
    """Planted: ``reset`` sets the parameters but leaves the optimizer's slots and step counter as the
    last use left them. Keras on TensorFlow, in this process (its adapter keeps models here too)."""
    a, b, c = _plans()
    keras_model._BUILT.clear()
    local = keras_tf.ADAPTER
    fresh = _arrays(local.run(b), local.trace_step(b, 3))
    keras_model._BUILT.clear()
    monkeypatch.setattr(keras_model.KerasModel, "reset", lambda self, params: keras_tf.set_params(self.layers, params))
    local.run(a)
    reused = _arrays(local.run(b), local.trace_step(b, 3))
    keras_model._BUILT.clear()
    differing = _differing(fresh, reused)
    assert "loss 1" in differing and "params layers.0.kernel" in differing
