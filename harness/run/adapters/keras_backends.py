"""Keras 3 on its other backends: ``keras@jax`` and ``keras@torch``.

The model, the optimizer and the loss are the same Keras objects as on TensorFlow (built by the
shared helpers of ``keras_tf``: ``build_model``, ``set_params``, ``build_optimizer``,
``build_loss``); only the training step is the backend's own, as Keras' guides write a custom
loop for each backend: ``keras_jax.JaxModel`` (one compiled ``jax.lax.while_loop`` per run) and
``keras_torch.TorchModel`` (eager steps).

A worker builds the Keras model, optimizer and loss once for each network, training and dtype
(``keras_model.model_for``) and resets its parameters and optimizer state for each use: a run, a
traced step, the dtype probes and the gradients of the same scenario share it (a control run, whose
rule is off, has its own).

Keras reads ``KERAS_BACKEND`` once, at import: one backend per process. These adapters therefore
run only in a worker process of their own (``harness.run.workers``), which sets the backend
before anything imports Keras; in any other process ``import_keras_on`` refuses to run.

Dtypes (measured on the pinned versions): on these backends Keras' type promotion maps every 64-bit
result type to 32 bits; each float64 run records where, and a control run turns that rule off
(``keras_narrowing``).
"""
from __future__ import annotations

import contextlib

import numpy as np

from harness.run.adapters import keras_tf
from harness.run.adapters.keras_backend_model import BackendModel, import_keras_on
from harness.run.adapters.keras_jax import JaxModel
from harness.run.adapters.keras_model import forward_plan, model_for, run_model, to_numpy
from harness.run.adapters.keras_narrowing import NARROWING_RULE, keep_64_bit
from harness.run.adapters.keras_torch import TorchModel
from harness.run.adapters.protocol import FLUSHED, SPLIT, Params, missing
from harness.run.plan import TrainingPlan
from harness.run.trajectory import Trajectory
from harness.spec.conventions import native
from harness.spec.scenario import OptimizerSpec, Scenario

__all__ = ["ADAPTERS", "BACKENDS", "NARROWING_RULE", "KerasOnBackend", "import_keras_on", "keep_64_bit"]

MODELS: dict[str, type[BackendModel]] = {"jax": JaxModel, "torch": TorchModel}
BACKENDS = tuple(MODELS)


class KerasOnBackend:
    """``keras@jax`` or ``keras@torch``: computes Keras' optimizer formulas with exact hyper-parameters,
    the "keras-unrounded" convention (measured: ``keras.ops.cast(0.9, "float64")`` is exactly 0.9 on
    these backends, float32-rounded on TensorFlow)."""

    conventions: tuple[str, ...] = ("keras-unrounded",)
    optimizer_module: str = "keras.optimizers"
    narrowing_rule: str | None = NARROWING_RULE

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.name = f"keras@{backend}"
        # XLA's CPU kernels flush subnormals, eager and jitted; torch's keep them (measured on the pinned versions)
        self.subnormals: str | None = FLUSHED if backend == "jax" else None
        # keras.ops.clip is jnp.clip, maximum then minimum, whose derivatives JAX splits at a tie; torch.clip's
        # passes the gradient at the bounds (measured on the pinned versions)
        self.ties: str | None = SPLIT if backend == "jax" else None

    def available(self) -> str | None:
        return missing("keras", self.backend)

    def native_convention(self, spec: OptimizerSpec) -> str:
        return native(spec, "keras-unrounded")

    def _model(self, plan: TrainingPlan) -> BackendModel:
        return model_for(MODELS[self.backend], plan)

    def run(self, plan: TrainingPlan) -> Trajectory:
        return run_model(self._model(plan), plan, framework=self.name)

    def trace_step(self, plan: TrainingPlan, step: int) -> Params:
        m = self._model(plan)
        with m.settings():
            return m.trace_step(plan, step)

    def forward(self, scenario: Scenario, params: Params, X: np.ndarray) -> list[np.ndarray]:
        m = self._model(forward_plan(scenario, params, X))
        with m.settings():
            return m.outputs(X)

    def loss(self, scenario: Scenario, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        keras, training = import_keras_on(self.backend), scenario.training_spec
        with keras_tf.floatx(keras, y_pred.dtype.name), keep_64_bit() if scenario.keep_64_bit \
                else contextlib.nullcontext():
            return to_numpy(keras_tf.build_loss(keras, training.loss, training.clip)(y_true, y_pred))

    def gradients(self, scenario: Scenario, params: Params, X: np.ndarray,
                  y: np.ndarray) -> tuple[np.ndarray, Params]:
        m = self._model(forward_plan(scenario, params, X, y))
        with m.settings():
            loss, grads = m.loss_and_grads(X, y)
            return to_numpy(loss), {n: to_numpy(g) for n, g in zip(m.names, grads)}

    def fit_baseline_seconds(self, plan: TrainingPlan) -> float | None:
        return None


ADAPTERS = {f"keras@{b}": KerasOnBackend(b) for b in BACKENDS}
