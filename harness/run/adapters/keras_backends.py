"""Keras 3 on its other backends: ``keras@jax`` and ``keras@torch``.

The model, the optimizer and the loss are the same Keras objects as on TensorFlow (built by the
shared helpers of ``keras_tf``: ``build_model``, ``set_params``, ``build_optimizer``,
``build_loss``); only the training step is the backend's own, as Keras' guides write a custom
loop for each backend:

* JAX: ``model.stateless_call`` under ``jax.value_and_grad``, then
  ``optimizer.stateless_apply``, the whole step one ``jax.jit`` function; float64 needs
  ``jax_enable_x64``, set before Keras is imported;
* torch: ``model(x)``, ``loss.backward()``, the gradients from each variable's ``.value.grad``,
  ``optimizer.apply`` under ``torch.no_grad()``.

Keras reads ``KERAS_BACKEND`` once, at import: one backend per process. These adapters therefore
run only in a worker process of their own (``harness.run.workers``), which sets the backend
before anything imports Keras; in any other process ``import_keras_on`` refuses to run.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from harness.run.adapters import keras_tf
from harness.run.adapters.protocol import Params
from harness.run.plan import TrainingPlan
from harness.run.trajectory import RowIds, Trajectory, TrajectoryRecorder, dtype_names, should_stop
from harness.spec.conventions import COMMON, difference
from harness.spec.scenario import OptimizerSpec, Scenario

BACKENDS = ("jax", "torch")


def import_keras_on(backend: str) -> Any:
    """Keras on ``backend``: sets ``KERAS_BACKEND`` (and, for JAX, 64-bit floats) before the import;
    RuntimeError when this process already imported Keras on another backend."""
    os.environ["KERAS_BACKEND"] = backend
    if backend == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_platforms", "cpu")
    with keras_tf._quiet_stderr():
        import keras
    if keras.backend.backend() != backend:
        raise RuntimeError(f"this process imported Keras on {keras.backend.backend()!r}; keras@{backend} runs "
                           "in a worker process of its own")
    if backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
    return keras


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu()
    return np.array(x)


def _computed_in(result: Any) -> str:
    """The dtype of an operation's result, or "float32 values in float64" for a float64 result whose
    values (not all integers) are all exact float32 numbers: computed in float32 and cast back."""
    name = dtype_names(t=result)["t"]
    if name != "float64":
        return name
    values = _to_numpy(result).astype(np.float64).ravel()
    values = values[np.isfinite(values)]
    single = values.size > 0 and bool(np.all(values.astype(np.float32).astype(np.float64) == values))
    return "float32 values in float64" if single and not np.all(values == np.round(values)) else name


class _Model:
    """The scenario's Keras model, optimizer and loss, with one training step in the backend's way."""

    def __init__(self, backend: str, plan: TrainingPlan) -> None:
        self.backend, self.plan = backend, plan
        self.keras = keras = import_keras_on(backend)
        scenario, dtype = plan.scenario, plan.dtype
        self._floatx = keras_tf.floatx(keras, dtype)
        self._floatx.__enter__()
        self.model, self.layers = keras_tf.build_model(keras, scenario, dtype)
        keras_tf.set_params(self.layers, plan.initial_params)
        self.names, self.variables = (list(x) for x in zip(*keras_tf.named_variables(self.layers)))
        self.convention = ""
        if scenario.training is not None:
            training = scenario.training
            self.optimizer, self.convention = keras_tf.build_optimizer(keras, training.optimizer, file=scenario.path)
            self.loss_fn = keras_tf.build_loss(keras, training.loss, training.clip)
            self.optimizer.build(self.variables)
            if backend == "jax":
                self._jax_step = self._make_jax_step()

    def close(self) -> None:
        self._floatx.__exit__(None, None, None)

    # --- one step -------------------------------------------------------------
    def _make_jax_step(self) -> Any:
        import jax

        model, loss_fn, optimizer = self.model, self.loss_fn, self.optimizer
        order = [next(i for i, v in enumerate(model.trainable_variables) if v is w) for w in self.variables]

        def loss_of(trainable: list[Any], x: Any, y: Any) -> Any:
            y_pred, _ = model.stateless_call(trainable, [v.value for v in model.non_trainable_variables], x,
                                             training=True)
            return loss_fn(y, y_pred)

        def step(trainable: list[Any], opt_vars: list[Any], x: Any, y: Any) -> Any:
            loss, grads = jax.value_and_grad(loss_of)(trainable, x, y)
            new_trainable, new_opt = optimizer.stateless_apply(opt_vars, grads, trainable)
            return loss, grads, new_trainable, new_opt

        self._order = order
        return jax.jit(step)

    def loss_and_grads(self, xb: np.ndarray, yb: np.ndarray) -> tuple[Any, list[Any]]:
        """The loss and the gradients (in ``self.variables`` order) at the current parameters."""
        if self.backend == "jax":
            import jax

            trainable = [v.value for v in self.model.trainable_variables]
            loss, grads = jax.value_and_grad(lambda t: self._loss_at(t, xb, yb))(trainable)
            return loss, [grads[i] for i in self._order]
        import torch

        self.model.zero_grad()
        loss = self.loss_fn(torch.from_numpy(yb), self.model(torch.from_numpy(xb), training=True))
        loss.backward()
        return loss, [v.value.grad for v in self.variables]

    def _loss_at(self, trainable: list[Any], xb: np.ndarray, yb: np.ndarray) -> Any:
        y_pred, _ = self.model.stateless_call(trainable, [v.value for v in self.model.non_trainable_variables], xb,
                                              training=True)
        return self.loss_fn(yb, y_pred)

    def train_step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[Any, list[Any]]:
        """One update; returns the loss and the gradients it applied (``self.variables`` order)."""
        if self.backend == "jax":
            trainable = [v.value for v in self.model.trainable_variables]
            opt_vars = [v.value for v in self.optimizer.variables]
            loss, grads, new_trainable, new_opt = self._jax_step(trainable, opt_vars, xb, yb)
            for v, value in zip(self.model.trainable_variables, new_trainable):
                v.assign(value)
            for v, value in zip(self.optimizer.variables, new_opt):
                v.assign(value)
            return loss, [grads[i] for i in self._order]
        import torch

        loss, grads = self.loss_and_grads(xb, yb)
        with torch.no_grad():
            self.optimizer.apply(grads, self.variables)
        return loss, grads

    def probe_dtypes(self, xb: np.ndarray, yb: np.ndarray) -> dict[str, str]:
        """The dtype each Keras operation of this model returns on this backend, called alone on the
        run's own first batch in the run's dtype (a one-operation control run): ``"keras.ops.matmul"``,
        ``"activation tanh"``, ``"loss mse"``... -> dtype name. Keras' dtype rules differ between
        backends; an operation that returns another dtype than its inputs' is where a run leaves its
        dtype."""
        ops, out = self.keras.ops, dict[str, str]()

        def seen(name: str, result: Any) -> None:
            out.setdefault(name, _computed_in(result))

        x = ops.convert_to_tensor(xb)
        seen("keras.ops.convert_to_tensor", x)
        a = x
        for i, layer in enumerate(self.layers):
            z = ops.matmul(a, layer.kernel)
            seen("keras.ops.matmul", z)
            if layer.use_bias:
                z = ops.add(z, layer.bias)
                seen("keras.ops.add", z)
            a = layer.activation(ops.cast(z, self.plan.dtype))
            seen(f"activation {self.plan.scenario.layers[i].activation}", a)
            a = ops.cast(a, self.plan.dtype)
        if self.plan.scenario.training is not None:
            seen(f"loss {self.plan.scenario.training.loss}", self.loss_fn(ops.convert_to_tensor(yb), a))
        return out

    def params(self) -> Params:
        return {n: _to_numpy(v.value) for n, v in zip(self.names, self.variables)}

    def outputs(self, X: np.ndarray) -> list[np.ndarray]:
        out, a = [], X
        for layer in self.layers:
            a = layer(a)
            out.append(_to_numpy(a))
        return out


class KerasOnBackend:
    """``keras@jax`` or ``keras@torch``: computes the Keras optimizer convention, like ``keras``."""

    conventions: tuple[str, ...] = ("keras",)
    optimizer_module: str = "keras.optimizers"

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.name = f"keras@{backend}"

    def available(self) -> str | None:
        for module in ("keras", self.backend):
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed"
        return None

    def native_convention(self, spec: OptimizerSpec) -> str:
        return COMMON if difference(spec) is None else "keras"

    def run(self, plan: TrainingPlan) -> Trajectory:
        m = _Model(self.backend, plan)
        try:
            trajectory = Trajectory(framework=self.name, dtype=plan.dtype, convention=m.convention,
                                    initial_params={k: v.copy() for k, v in plan.initial_params.items()},
                                    outputs_initial=m.outputs(plan.X))
            if plan.scenario.training is None:
                trajectory.outputs_final = trajectory.outputs_initial
                return trajectory
            recorder = TrajectoryRecorder(plan.max_steps, plan.initial_params)
            rows = RowIds(plan.X)
            all_rows = rows.ids(plan.X)
            full = plan.is_full_batch_in_order
            previous: Any = np.inf
            for step in range(plan.max_steps):
                xb, yb = plan.batch(step, full=full)
                if plan.early_stop_tol is not None:  # the labs' early stop, before the update
                    loss_now = _to_numpy(m.loss_and_grads(xb, yb)[0])[()]
                    if should_stop(loss_now, previous, plan.early_stop_tol):
                        trajectory.stopped_early_at = step
                        break
                    previous = loss_now
                loss, grads = m.train_step(xb, yb)
                if step == 0:
                    trajectory.op_dtypes = m.probe_dtypes(xb, yb)
                    trajectory.computed_dtypes = dtype_names(parameters=m.variables[0].value, loss=loss,
                                                             gradients=grads[0])
                recorder.record(_to_numpy(loss)[()], {n: _to_numpy(g) for n, g in zip(m.names, grads)}, m.params())
                trajectory.batch_rows.append(all_rows if xb is plan.X else rows.ids(xb))
            trajectory.outputs_final = m.outputs(plan.X)
            return recorder.finish(trajectory)
        finally:
            m.close()

    def trace_step(self, plan: TrainingPlan, step: int) -> Params:
        m = _Model(self.backend, plan)
        try:
            for t in range(step):
                m.train_step(*plan.batch(t, full=False))
            xb, yb = plan.batch(step, full=False)
            trace: Params = {f"params {n}": v for n, v in m.params().items()}
            trace.update({f"output layers.{i}": a for i, a in enumerate(m.outputs(xb))})
            loss, grads = m.train_step(xb, yb)
            trace["loss"] = _to_numpy(loss)
            trace.update({f"gradient {n}": _to_numpy(g) for n, g in zip(m.names, grads)})
            trace.update({f"updated {n}": v for n, v in m.params().items()})
            return trace
        finally:
            m.close()

    def forward(self, scenario: Scenario, params: Params, X: np.ndarray) -> list[np.ndarray]:
        m = _Model(self.backend, _forward_plan(scenario, params, X))
        try:
            return m.outputs(X)
        finally:
            m.close()

    def loss(self, name: str, clip: str, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        keras = import_keras_on(self.backend)
        with keras_tf.floatx(keras, y_pred.dtype.name):
            return _to_numpy(keras_tf.build_loss(keras, name, clip)(y_true, y_pred))

    def gradients(self, scenario: Scenario, params: Params, X: np.ndarray,
                  y: np.ndarray) -> tuple[np.ndarray, Params]:
        plan = _forward_plan(scenario, params, X, y)
        m = _Model(self.backend, plan)
        try:
            loss, grads = m.loss_and_grads(X, y)
            return _to_numpy(loss), {n: _to_numpy(g) for n, g in zip(m.names, grads)}
        finally:
            m.close()

    def fit_baseline_seconds(self, plan: TrainingPlan) -> float | None:
        return None


def _forward_plan(scenario: Scenario, params: Params, X: np.ndarray, y: np.ndarray | None = None) -> TrainingPlan:
    """A one-batch plan carrying ``params`` and ``X`` (what ``_Model`` is built from)."""
    n = X.shape[0]
    return TrainingPlan(scenario=scenario, dtype=X.dtype.name, X=X, y=X[:, :0] if y is None else y,
                        initial_params=params, orders=np.arange(n)[None, :], bounds=((0, n),))


ADAPTERS = {f"keras@{b}": KerasOnBackend(b) for b in BACKENDS}
