"""The from-scratch NumPy reference, run over a training plan."""
from __future__ import annotations

import numpy as np

from harness.run.plan import TrainingPlan
from harness.run.trajectory import Trajectory, TrajectoryRecorder, should_stop
from reference.layers import Dense
from reference.network import Network
from reference.optimizers import make_optimizer


def available() -> str | None:
    return None


def build_network(scenario) -> Network:
    return Network(layers=tuple(
        Dense(units=l.units, activation=l.activation, use_bias=l.use_bias, axis=l.axis) for l in scenario.layers))


def build_optimizer(spec):
    """The reference optimizer in the convention the spec pins (``options["convention"]``),
    "keras" when it pins none; its ``.convention`` is "common" when the two agree."""
    return make_optimizer(spec, convention=spec.options.get("convention", "keras"))


def layer_outputs(network: Network, X: np.ndarray, params: dict[str, np.ndarray]) -> list[np.ndarray]:
    with np.errstate(all="ignore"):
        return [cache.a.copy() for cache in network.forward(X, params)[1]]


def run(plan: TrainingPlan) -> Trajectory:
    scenario, training = plan.scenario, plan.scenario.training
    network = build_network(scenario)
    params = {k: v.copy() for k, v in plan.initial_params.items()}
    trajectory = Trajectory(framework="numpy", dtype=plan.dtype,
                            initial_params={k: v.copy() for k, v in params.items()},
                            outputs_initial=layer_outputs(network, plan.X, params))
    if training is None:
        trajectory.outputs_final = trajectory.outputs_initial
        return trajectory
    optimizer = build_optimizer(training.optimizer)
    trajectory.convention = optimizer.convention
    recorder = TrajectoryRecorder(plan.max_steps, params)
    full = plan.is_full_batch_in_order
    previous = np.inf
    with np.errstate(all="ignore"):  # a diverging run reaches inf/nan; that is a result, not an error
        for step in range(plan.max_steps):
            if full:
                xb, yb = plan.X, plan.y
            else:
                idx = plan.batch_indices(step)
                xb, yb = plan.X[idx], plan.y[idx]
            loss, grads = network.loss_and_gradients(xb, yb, params, loss=training.loss, clip=training.clip)
            if should_stop(loss, previous, plan.early_stop_tol):
                trajectory.stopped_early_at = step
                break
            previous = loss
            optimizer.step(params, grads)
            recorder.record(loss, grads, params)
    trajectory.outputs_final = layer_outputs(network, plan.X, params)
    return recorder.finish(trajectory)


def trace_step(plan: TrainingPlan, step: int) -> dict[str, np.ndarray]:
    """Replay steps ``0 .. step-1`` (so the optimizer state is the run's), then record step
    ``step`` stage by stage, named as ``harness.run.trajectory.trace_stages``."""
    scenario, training = plan.scenario, plan.scenario.training
    network = build_network(scenario)
    optimizer = build_optimizer(training.optimizer)
    params = {k: v.copy() for k, v in plan.initial_params.items()}
    trace: dict[str, np.ndarray] = {}
    with np.errstate(all="ignore"):
        for t in range(step + 1):
            idx = plan.batch_indices(t)
            xb, yb = plan.X[idx], plan.y[idx]
            if t == step:
                trace.update({f"params {k}": v.copy() for k, v in params.items()})
                _, caches = network.forward(xb, params)
                trace.update({f"output layers.{i}": c.a for i, c in enumerate(caches)})
            loss, grads = network.loss_and_gradients(xb, yb, params, loss=training.loss, clip=training.clip)
            optimizer.step(params, grads)
        trace["loss"] = np.asarray(loss)
        trace.update({f"gradient {k}": v for k, v in grads.items()})
        trace.update({f"updated {k}": v.copy() for k, v in params.items()})
    return trace
