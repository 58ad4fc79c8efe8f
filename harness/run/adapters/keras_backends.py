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

Dtypes (measured on the pinned versions): on these backends Keras' type promotion
(``keras.backend.result_type``) maps every 64-bit result type to 32 bits, so some operations of
a float64 run (``keras.ops.mean`` in a loss on JAX, ``keras.ops.matmul`` on torch...) compute in
float32. Each float64 run records where (``Trajectory.narrowed_ops``, from every operation of its
first step: the jaxpr on JAX, a ``TorchFunctionMode`` on torch). A scenario with ``keep_64_bit``
(a control run the runner makes, ``harness.run.runner``) runs with that one rule turned off.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from types import FrameType
from typing import Any, Iterator

import numpy as np

from harness.run.adapters import keras_tf
from harness.run.adapters.protocol import Params, missing
from harness.run.plan import TrainingPlan
from harness.run.threads import framework_threads
from harness.run.trajectory import RowIds, Trajectory, TrajectoryRecorder, dtype_names, should_stop
from harness.spec.conventions import native
from harness.spec.scenario import OptimizerSpec, Scenario

BACKENDS = ("jax", "torch")
NARROWING_RULE = "Keras' rule that returns 32-bit results from 64-bit inputs"


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
        torch.set_num_threads(framework_threads())
    return keras


@contextlib.contextmanager
def keep_64_bit() -> Iterator[None]:
    """Turn off ``NARROWING_RULE`` while the block runs: Keras' promotion table
    ``BIT64_TO_BIT32_DTYPE`` (``keras.src.backend.common.dtypes``, read at each call) emptied, then
    restored. A control setting: the run computes every operation in 64 bits, which shows whether that
    rule is the whole of a float64 run's difference."""
    from keras.src.backend.common import dtypes

    saved = dict(dtypes.BIT64_TO_BIT32_DTYPE)
    dtypes.BIT64_TO_BIT32_DTYPE.clear()
    try:
        yield
    finally:
        dtypes.BIT64_TO_BIT32_DTYPE.update(saved)


def _keras_function(frames: list[tuple[str, str]]) -> str:
    """The innermost Keras function among ``(file, function)`` frames (innermost first) outside the
    backend's ``core`` module (``cast``, ``convert_to_tensor``: called by the operation), as a dotted
    name (``keras.src.backend.jax.numpy.mean``); "" when no frame is Keras'."""
    names = []
    for file, function in frames:
        parts = Path(file).with_suffix("").parts
        if "keras" in parts and "src" in parts:
            start = len(parts) - 1 - parts[::-1].index("keras")
            names.append(".".join((*parts[start:], function.split(".")[-1])))
    # the operation that asked for the narrowing, not the backend's conversion helpers it called
    return next((n for n in names if ".core." not in n), names[0] if names else "")


def _narrowed_in_jaxpr(jaxpr: Any, out: dict[str, str]) -> None:
    """Every equation (sub-jaxprs included) with a float64 input and a narrower float result."""
    for eqn in jaxpr.eqns:
        for value in eqn.params.values():
            for inner in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(inner, "jaxpr", inner)
                if hasattr(inner, "eqns"):
                    _narrowed_in_jaxpr(inner, out)
        ins = {str(getattr(v.aval, "dtype", "")) for v in eqn.invars if hasattr(v, "aval")}
        narrow = [str(v.aval.dtype) for v in eqn.outvars if str(getattr(v.aval, "dtype", "")) in ("float32", "float16",
                                                                                              "bfloat16")]
        if "float64" in ins and narrow:
            frames = [(f.file_name, f.function_name) for f in eqn.source_info.traceback.frames]
            out.setdefault(_keras_function(frames) or eqn.primitive.name, narrow[0])


@contextlib.contextmanager
def _watch_torch() -> Iterator["_NarrowedOps"]:
    """A ``TorchFunctionMode`` that records what ``_NarrowedOps`` finds while the block runs."""
    from torch.overrides import TorchFunctionMode

    watch = _NarrowedOps()

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                               kwargs: dict[str, Any] | None = None) -> Any:
            return watch(func, args, kwargs or {})

    with Mode():
        yield watch


class _NarrowedOps:
    """A ``torch.overrides.TorchFunctionMode`` body: each torch function called with a float64 tensor
    that returns a narrower float tensor, named by the innermost Keras function calling it."""

    def __init__(self) -> None:
        self.found: dict[str, str] = {}

    def __call__(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        import torch

        result = func(*args, **kwargs)
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        results = result if isinstance(result, (tuple, list)) else (result,)
        narrow = [str(r.dtype).removeprefix("torch.") for r in results
                  if isinstance(r, torch.Tensor) and r.dtype in (torch.float32, torch.float16, torch.bfloat16)]
        if narrow and any(t.dtype == torch.float64 for t in tensors):
            frame: FrameType | None = sys._getframe(1)
            frames = []
            while frame is not None:
                frames.append((frame.f_code.co_filename, frame.f_code.co_name))
                frame = frame.f_back
            self.found.setdefault(_keras_function(frames) or str(getattr(func, "__name__", func)), narrow[0])
        return result


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu()
    return np.array(x)


class _Model:
    """The scenario's Keras model, optimizer and loss, with one training step in the backend's way."""

    def __init__(self, backend: str, plan: TrainingPlan) -> None:
        self.backend, self.plan = backend, plan
        self.keras = keras = import_keras_on(backend)
        scenario, dtype = plan.scenario, plan.dtype
        self._settings = contextlib.ExitStack()  # left in ``close``
        self._settings.enter_context(keras_tf.floatx(keras, dtype))
        if scenario.keep_64_bit:
            self._settings.enter_context(keep_64_bit())
        self.model, self.layers = keras_tf.build_model(keras, scenario, dtype)
        keras_tf.set_params(self.layers, plan.initial_params)
        self.names, self.variables = (list(x) for x in zip(*keras_tf.named_variables(self.layers)))
        self.convention = ""
        if scenario.training is not None:
            training = scenario.training
            self.optimizer, self.convention = keras_tf.build_optimizer(keras, training.optimizer, file=scenario.path,
                                                                      adapter=ADAPTERS[f"keras@{backend}"])
            self.loss_fn = keras_tf.build_loss(keras, training.loss, training.clip)
            self.optimizer.build(self.variables)
            if backend == "jax":
                self._jax_step = self._make_jax_step()

    def close(self) -> None:
        self._settings.close()

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

    def first_step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[Any, list[Any], dict[str, str]]:
        """``train_step``, and every operation of it that returned a narrower float than its float64
        inputs (Keras function -> dtype): from the step's jaxpr on JAX, watched on torch."""
        if self.backend == "jax":
            import jax

            trainable = [v.value for v in self.model.trainable_variables]
            opt_vars = [v.value for v in self.optimizer.variables]
            narrowed: dict[str, str] = {}
            _narrowed_in_jaxpr(jax.make_jaxpr(self._jax_step)(trainable, opt_vars, xb, yb).jaxpr, narrowed)
            return (*self.train_step(xb, yb), narrowed)
        with _watch_torch() as watch:
            loss, grads = self.train_step(xb, yb)
        return loss, grads, watch.found

    def first_outputs(self, X: np.ndarray) -> tuple[list[np.ndarray], dict[str, str]]:
        """``outputs``, and the operations of the forward pass that narrowed (as ``first_step``)."""
        if self.backend == "jax":
            import jax

            narrowed: dict[str, str] = {}
            trainable = [v.value for v in self.model.trainable_variables]
            _narrowed_in_jaxpr(jax.make_jaxpr(lambda t: self.model.stateless_call(
                t, [v.value for v in self.model.non_trainable_variables], X)[0])(trainable).jaxpr, narrowed)
            return self.outputs(X), narrowed
        with _watch_torch() as watch:
            outputs = self.outputs(X)
        return outputs, watch.found

    def params(self) -> Params:
        return {n: _to_numpy(v.value) for n, v in zip(self.names, self.variables)}

    def outputs(self, X: np.ndarray) -> list[np.ndarray]:
        out, a = [], X
        for layer in self.layers:
            a = layer(a)
            out.append(_to_numpy(a))
        return out


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

    def available(self) -> str | None:
        return missing("keras", self.backend)

    def native_convention(self, spec: OptimizerSpec) -> str:
        return native(spec, "keras-unrounded")

    def run(self, plan: TrainingPlan) -> Trajectory:
        m = _Model(self.backend, plan)
        try:
            outputs, narrowed = m.first_outputs(plan.X)
            trajectory = Trajectory(framework=self.name, dtype=plan.dtype, convention=m.convention,
                                    initial_params={k: v.copy() for k, v in plan.initial_params.items()},
                                    outputs_initial=outputs, narrowed_ops=narrowed)
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
                if step == 0:
                    loss, grads, narrowed = m.first_step(xb, yb)
                    trajectory.narrowed_ops.update(narrowed)
                    trajectory.computed_dtypes = dtype_names(parameters=m.variables[0].value, loss=loss,
                                                             gradients=grads[0])
                else:
                    loss, grads = m.train_step(xb, yb)
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

    def loss(self, scenario: Scenario, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        keras, training = import_keras_on(self.backend), scenario.training_spec
        with keras_tf.floatx(keras, y_pred.dtype.name), keep_64_bit() if scenario.keep_64_bit \
                else contextlib.nullcontext():
            return _to_numpy(keras_tf.build_loss(keras, training.loss, training.clip)(y_true, y_pred))

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
