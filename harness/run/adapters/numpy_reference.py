"""The from-scratch NumPy reference (``reference/``), run over a training plan."""
from __future__ import annotations

import ctypes
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from harness.run.adapters.protocol import Params
from harness.run.plan import TrainingPlan
from harness.run.trajectory import RowIds, Trajectory, TrajectoryRecorder, dtype_names, should_stop
from harness.spec.conventions import native, pinned
from harness.spec.scenario import OptimizerSpec, Scenario
from reference.layers import Dense
from reference.losses import Loss, get_loss
from reference.network import Network
from reference.optimizers import CONVENTIONS, SGD, Adam, RMSprop, make_optimizer


def build_network(scenario: Scenario, losses: Mapping[str, Loss] | None = None) -> Network:
    return Network(layers=tuple(
        Dense(units=layer.units, activation=layer.activation, use_bias=layer.use_bias, axis=layer.axis)
        for layer in scenario.layers), losses=losses)


def build_optimizer(spec: OptimizerSpec) -> SGD | Adam | RMSprop:
    """The reference optimizer in the convention the spec pins (``options["convention"]``),
    "keras" when it pins none; its ``.convention`` is "common" when the conventions agree."""
    return make_optimizer(spec, convention=pinned(spec) or "keras")


# glibc's mallopt parameters (malloc.h) and the values its own dynamic rule reaches once it has
# seen a 32 MiB block freed: blocks below 32 MiB come from the heap, and up to 64 MiB of freed
# heap is kept for the next step instead of being returned to the kernel.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20


def keep_freed_memory() -> None:
    """Let glibc keep the memory a training step frees for the next step (Linux only; elsewhere nothing).

    Every step allocates and frees the same arrays (10,000 x 2 activations, their deltas). With
    glibc's defaults a fresh process returns them to the kernel after each step and page-faults them
    back in the next (1.4 million page faults, two thirds of the Week 4 network's 3.4 s in the
    kernel); how often depends on what the process allocated before. Fixed thresholds make the
    reference's speed the same in every process. The arithmetic is untouched.
    """
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None) if sys.platform.startswith("linux") else None
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD)


def layer_outputs(network: Network, X: np.ndarray, params: Params) -> list[np.ndarray]:
    with np.errstate(all="ignore"):
        return [cache.a.copy() for cache in network.forward(X, params)[1]]


class NumpyReference:
    name: str = "numpy"
    conventions: tuple[str, ...] = CONVENTIONS
    optimizer_module: str = "reference.optimizers"
    narrowing_rule: str | None = None  # it returns no 32-bit results from 64-bit inputs
    subnormals: str | None = None  # IEEE 754's: kept
    ties: str | None = None  # a clip's derivative at its bounds: 1, the gradient passes
    # the losses it trains; None: the reference's own (a measurement's variant sets others)
    losses: Mapping[str, Loss] | None = None

    def available(self) -> str | None:
        return None

    def native_convention(self, spec: OptimizerSpec) -> str:
        return native(spec, pinned(spec) or "keras")

    def run(self, plan: TrainingPlan) -> Trajectory:
        keep_freed_memory()
        scenario, training = plan.scenario, plan.scenario.training
        network = build_network(scenario, self.losses)
        params = {k: v.copy() for k, v in plan.initial_params.items()}
        trajectory = Trajectory(framework=self.name, dtype=plan.dtype,
                                initial_params={k: v.copy() for k, v in params.items()},
                                outputs_initial=layer_outputs(network, plan.X, params))
        if training is None:
            trajectory.outputs_final = trajectory.outputs_initial
            return trajectory
        optimizer = build_optimizer(training.optimizer)
        # the label, not the pin: "keras" for an RMSprop pinned to "keras-unrounded" (the same arithmetic)
        trajectory.convention = self.native_convention(training.optimizer)
        recorder = TrajectoryRecorder(plan.max_steps, params)
        full = plan.is_full_batch_in_order
        rows = RowIds(plan.X)
        all_rows = rows.ids(plan.X)  # the whole data set, in order: one array shared by every full batch
        previous: float | np.floating[Any] | np.ndarray = np.inf
        with np.errstate(all="ignore"):  # a diverging run reaches inf/nan; that is a result, not an error
            for step in range(plan.max_steps):
                xb, yb = plan.batch(step, full=full)
                loss, grads = network.loss_and_gradients(xb, yb, params, loss=training.loss, clip=training.clip)
                if step == 0:
                    trajectory.computed_dtypes = dtype_names(parameters=next(iter(params.values())),
                                                             loss=np.asarray(loss),
                                                             gradients=next(iter(grads.values())))
                if should_stop(loss, previous, plan.early_stop_tol):
                    trajectory.stopped_early_at = step
                    break
                previous = loss
                optimizer.step(params, grads)
                recorder.record(loss, grads, params)
                trajectory.batch_rows.append(all_rows if xb is plan.X else rows.ids(xb))
        trajectory.outputs_final = layer_outputs(network, plan.X, params)
        return recorder.finish(trajectory)

    def trace_step(self, plan: TrainingPlan, step: int) -> Params:
        """Replay steps ``0 .. step-1`` (so the optimizer state is the run's), then record step
        ``step`` stage by stage, named as ``harness.run.trajectory.trace_stages``."""
        scenario, training = plan.scenario, plan.scenario.training
        assert training is not None, "a forward-only scenario has no steps"
        network = build_network(scenario, self.losses)
        optimizer = build_optimizer(training.optimizer)
        params = {k: v.copy() for k, v in plan.initial_params.items()}
        trace: Params = {}
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

    def forward(self, scenario: Scenario, params: Params, X: np.ndarray) -> list[np.ndarray]:
        return layer_outputs(build_network(scenario), X, params)

    def loss(self, scenario: Scenario, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        training = scenario.training_spec
        with np.errstate(all="ignore"):
            return np.asarray(get_loss(training.loss).value(y_true, y_pred, clip=training.clip))

    def gradients(self, scenario: Scenario, params: Params, X: np.ndarray,
                  y: np.ndarray) -> tuple[np.ndarray, Params]:
        assert scenario.training is not None, "gradients need a training loss"
        with np.errstate(all="ignore"):
            loss, grads = build_network(scenario, self.losses).loss_and_gradients(
                X, y, params, loss=scenario.training.loss, clip=scenario.training.clip)
        return np.asarray(loss), grads

    def fit_baseline_seconds(self, plan: TrainingPlan) -> float | None:
        return None


ADAPTER = NumpyReference()
