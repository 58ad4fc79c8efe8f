"""Keras 3 on its other backends: ``keras@jax`` and ``keras@torch``.

The model, the optimizer and the loss are the same Keras objects as on TensorFlow (built by the
shared helpers of ``keras_tf``: ``build_model``, ``set_params``, ``build_optimizer``,
``build_loss``); only the training step is the backend's own, as Keras' guides write a custom
loop for each backend:

* JAX: ``model.stateless_call`` under ``jax.value_and_grad``, then
  ``optimizer.stateless_apply``; every step of a run in one compiled ``jax.lax.while_loop``
  (batches gathered, the early stop tested and each step recorded inside it), compiled once per
  worker for each network, training, dtype and batch order; float64 needs ``jax_enable_x64``, set
  before Keras is imported;
* torch: each Dense layer's ``call`` (its maths, as ``stateless_call`` runs it on JAX, without
  ``Layer.__call__``'s per-call bookkeeping), ``loss.backward()``, the gradients from each
  variable's ``.value.grad``, ``optimizer.apply`` under ``torch.no_grad()``.

A worker builds the Keras model, optimizer and loss once for each network, training and dtype
(``model_for``) and resets its parameters and optimizer state for each use: a run, a traced step, the
dtype probes and the gradients of the same scenario share it (a control run, whose rule is off,
has its own).

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
from collections import OrderedDict
from dataclasses import dataclass
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


def _view(x: Any) -> np.ndarray:
    """A torch tensor's values as a NumPy array sharing its memory (copied by whoever keeps them)."""
    return x.detach().numpy()


@dataclass(frozen=True)
class _Batches:
    """What the compiled JAX loop needs of a plan's batch order besides its arrays: every step the whole
    data set in order (``full``), or ``n_full`` batches of ``size`` rows per epoch then, when the data set
    does not divide, one of ``rest`` rows; the plan's whole number of steps and its early stop."""

    full: bool
    size: int
    n_full: int
    rest: int
    steps: int
    tol: float | None

    @classmethod
    def of(cls, plan: TrainingPlan) -> "_Batches":
        sizes = [end - start for start, end in plan.bounds]
        training = plan.scenario.training_spec
        return cls(full=plan.is_full_batch_in_order, size=sizes[0], n_full=sizes.count(sizes[0]),
                   rest=sizes[-1] if sizes[-1] != sizes[0] else 0, steps=training.epochs * len(sizes),
                   tol=plan.early_stop_tol)

    def rows(self, step: int) -> int:
        """The rows step ``step``'s batch holds."""
        return self.rest if self.rest and step % (self.n_full + 1) == self.n_full else self.size


class _Model:
    """The scenario's Keras model, optimizer and loss, with one training step in the backend's way.
    Built once per worker for each network, training and dtype (``model_for``): a run, its control run's
    plan aside, a traced step and the dtype probes of the same scenario reuse it, its compiled JAX
    functions included, from the parameters and optimizer state they set (``reset``)."""

    def __init__(self, backend: str, scenario: Scenario, dtype: str) -> None:
        self.backend, self.scenario, self.dtype = backend, scenario, dtype
        self.keras = keras = import_keras_on(backend)
        self.convention = ""
        self._loops: dict[_Batches, Any] = {}
        self._probes: dict[tuple[Any, ...], tuple[dict[str, str], dict[str, str]]] = {}
        with self.settings():
            self.model, self.layers = keras_tf.build_model(keras, scenario, dtype)
            self.names, self.variables = (list(x) for x in zip(*keras_tf.named_variables(self.layers)))
            if scenario.training is not None:
                training = scenario.training
                self.optimizer, self.convention = keras_tf.build_optimizer(
                    keras, training.optimizer, file=scenario.path, adapter=ADAPTERS[f"keras@{backend}"])
                self.loss_fn = keras_tf.build_loss(keras, training.loss, training.clip)
                self.optimizer.build(self.variables)
                self._initial_state = [_to_numpy(v.value) for v in self.optimizer.variables]
                if backend == "jax":
                    self._make_jax_step()

    @contextlib.contextmanager
    def settings(self) -> Iterator[None]:
        """Keras' float type for the run's dtype, and its narrowing rule off for a control run: in force
        whenever the model computes or is traced."""
        with keras_tf.floatx(self.keras, self.dtype), keep_64_bit() if self.scenario.keep_64_bit \
                else contextlib.nullcontext():
            yield

    def reset(self, params: Params) -> None:
        """The parameters ``params`` and, when it trains, the optimizer as built (no step taken)."""
        keras_tf.set_params(self.layers, params)
        if self.scenario.training is not None:
            for v, value in zip(self.optimizer.variables, self._initial_state):
                v.assign(value)

    # --- one step -------------------------------------------------------------
    def _make_jax_step(self) -> None:
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

        self._order, self._step = order, step
        self._jax_step = jax.jit(step)

    def _jax_loop(self, batches: _Batches) -> Any:
        """Every step of a plan with this batch order in one compiled ``jax.lax.while_loop`` (the
        step is ``_make_jax_step``'s), recording what the comparison reads: each step's loss (in its
        own dtype), gradients and updated parameters (in ``self.variables`` order) and, for batches
        gathered from X, the rows gathered (-1 past a short last batch). The labs' early stop is
        tested before each update, on the step's loss, as the reference does. Arguments: the
        trainable and optimizer values, X, y, the plan's epoch orders and how many steps to make
        (at most ``batches.steps``: a cut plan or a traced step reuses the compiled loop)."""
        if batches in self._loops:
            return self._loops[batches]
        import jax
        import jax.numpy as jnp
        from jax import lax

        step, order, b = self._step, self._order, batches
        per_epoch = b.n_full + (1 if b.rest else 0)

        def one_step(trainable: list[Any], opt: list[Any], X: Any, y: Any, orders: Any, t: Any) -> Any:
            if b.full:
                return step(trainable, opt, X, y), None
            row = orders[(t // per_epoch) % orders.shape[0]]
            within = t % per_epoch

            def gathered(start: Any, size: int) -> Any:
                def go(_: Any) -> Any:
                    idx = lax.dynamic_slice_in_dim(row, start, size)
                    out = step(trainable, opt, jnp.take(X, idx, axis=0), jnp.take(y, idx, axis=0))
                    return out, jnp.pad(idx, (0, b.size - size), constant_values=-1)
                return go

            if not b.rest:
                return gathered(within * b.size, b.size)(None)
            return lax.cond(within < b.n_full, gathered(within * b.size, b.size),
                            gathered(b.n_full * b.size, b.rest), None)

        def loop(trainable: list[Any], opt: list[Any], X: Any, y: Any, orders: Any, limit: Any) -> Any:
            xb = X if b.full else X[:b.size]
            loss_shape, grad_shapes, _, _ = jax.eval_shape(step, trainable, opt, xb, y[:xb.shape[0]])
            record = (jnp.zeros((b.steps,), loss_shape.dtype),
                      [jnp.zeros((b.steps, *grad_shapes[i].shape), grad_shapes[i].dtype) for i in order],
                      [jnp.zeros((b.steps, *trainable[i].shape), trainable[i].dtype) for i in order],
                      jnp.zeros((b.steps, 0 if b.full else b.size), orders.dtype))

            def body(state: Any) -> Any:
                t, _, previous, trainable, opt, (losses, grads_out, params_out, rows) = state
                (loss, grads, new_trainable, new_opt), idx = one_step(trainable, opt, X, y, orders, t)
                losses = losses.at[t].set(loss)
                grads_out = [g.at[t].set(grads[i]) for g, i in zip(grads_out, order)]
                params_out = [p.at[t].set(new_trainable[i]) for p, i in zip(params_out, order)]
                if idx is not None:
                    rows = rows.at[t].set(idx)
                if b.tol is None:
                    return t + 1, False, loss, new_trainable, new_opt, (losses, grads_out, params_out, rows)
                # continue unless |loss - previous| < tol (a nan difference, from a diverged run, continues)
                d = jnp.abs(loss - previous)
                go = (d >= b.tol) | jnp.isnan(d)
                keep = lambda new, old: [jnp.where(go, n, o) for n, o in zip(new, old)]  # noqa: E731
                return (t + go.astype(t.dtype), ~go, jnp.where(go, loss, previous), keep(new_trainable, trainable),
                        keep(new_opt, opt), (losses, grads_out, params_out, rows))

            start = (jnp.asarray(0, jnp.int64), jnp.asarray(False), jnp.asarray(np.inf, loss_shape.dtype),
                     list(trainable), list(opt), record)
            return lax.while_loop(lambda s: (s[0] < limit) & ~s[1], body, start)

        self._loops[batches] = compiled = jax.jit(loop)
        return compiled

    def run_jax(self, plan: TrainingPlan, steps: int) -> tuple[int, bool, Any, Params, Params, np.ndarray]:
        """The plan's first ``steps`` steps in the compiled loop, from the current parameters and
        optimizer state: the steps made, whether the early stop ended them, the losses, gradients and
        parameters of each step, the rows each gathered; the model's variables hold the final state."""
        trainable = [v.value for v in self.model.trainable_variables]
        opt = [v.value for v in self.optimizer.variables]
        batches = _Batches.of(plan)
        t, stopped, _, trainable, opt, (losses, grads, params, rows) = self._jax_loop(batches)(
            trainable, opt, plan.X, plan.y, plan.orders, steps)
        for v, value in zip(self.model.trainable_variables, trainable):
            v.assign(value)
        for v, value in zip(self.optimizer.variables, opt):
            v.assign(value)
        n = int(t)
        return (n, bool(stopped), np.asarray(losses)[:n], {k: np.asarray(g)[:n] for k, g in zip(self.names, grads)},
                {k: np.asarray(p)[:n] for k, p in zip(self.names, params)}, np.asarray(rows)[:n])

    def loss_and_grads(self, xb: np.ndarray, yb: np.ndarray) -> tuple[Any, list[Any]]:
        """The loss and the gradients (in ``self.variables`` order) at the current parameters."""
        if self.backend == "jax":
            import jax

            trainable = [v.value for v in self.model.trainable_variables]
            loss, grads = jax.value_and_grad(lambda t: self._loss_at(t, xb, yb))(trainable)
            return loss, [grads[i] for i in self._order]
        import torch

        self.model.zero_grad()
        a = torch.from_numpy(xb)
        for layer in self.layers:  # each Dense layer's own maths (``call``), as ``stateless_call`` runs it on JAX
            a = layer.call(a, training=True)
        loss = self.loss_fn(torch.from_numpy(yb), a)
        loss.backward()
        return loss, [v.value.grad for v in self.variables]

    def _loss_at(self, trainable: list[Any], xb: np.ndarray, yb: np.ndarray) -> Any:
        y_pred, _ = self.model.stateless_call(trainable, [v.value for v in self.model.non_trainable_variables], xb,
                                              training=True)
        return self.loss_fn(yb, y_pred)

    def train_step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[Any, list[Any]]:
        """One update (torch); returns the loss and the gradients it applied (``self.variables`` order)."""
        import torch

        loss, grads = self.loss_and_grads(xb, yb)
        with torch.no_grad():
            self.optimizer.apply(grads, self.variables)
        return loss, grads

    def step_probe(self, xb: np.ndarray, yb: np.ndarray) -> tuple[dict[str, str], dict[str, str]]:
        """On JAX, without running it: every operation of a training step on a batch shaped like ``xb``
        that returns a narrower float than its float64 inputs (Keras function -> dtype), from the step's
        jaxpr, and the dtypes the step computes its loss and gradients in (``dtype_names``' kinds);
        traced once per batch shape."""
        key = ("step", xb.shape, yb.shape)
        if key not in self._probes:
            import jax

            trainable = [v.value for v in self.model.trainable_variables]
            opt_vars = [v.value for v in self.optimizer.variables]
            narrowed: dict[str, str] = {}
            jaxpr, (loss, grads, _, _) = jax.make_jaxpr(self._jax_step, return_shape=True)(trainable, opt_vars, xb, yb)
            _narrowed_in_jaxpr(jaxpr.jaxpr, narrowed)
            self._probes[key] = narrowed, dtype_names(parameters=self.variables[0].value, loss=loss,
                                                      gradients=grads[self._order[0]])
        return self._probes[key]

    def first_step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[Any, list[Any], dict[str, str]]:
        """On torch: ``train_step``, and every operation of it that returned a narrower float than its
        float64 inputs (Keras function -> dtype), watched."""
        with _watch_torch() as watch:
            loss, grads = self.train_step(xb, yb)
        return loss, grads, watch.found

    def first_outputs(self, X: np.ndarray) -> tuple[list[np.ndarray], dict[str, str]]:
        """``outputs``, and the operations of the forward pass that narrowed (as ``first_step``; on JAX
        from the forward pass's jaxpr, traced once per shape of ``X``)."""
        if self.backend == "jax":
            key = ("forward", X.shape)
            if key not in self._probes:
                import jax

                narrowed: dict[str, str] = {}
                trainable = [v.value for v in self.model.trainable_variables]
                _narrowed_in_jaxpr(jax.make_jaxpr(lambda t: self.model.stateless_call(
                    t, [v.value for v in self.model.non_trainable_variables], X)[0])(trainable).jaxpr, narrowed)
                self._probes[key] = narrowed, {}
            return self.outputs(X), dict(self._probes[key][0])
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


_BUILT: "OrderedDict[tuple[Any, ...], _Model]" = OrderedDict()
BUILT_KEPT = 16  # models (and their compiled functions) a worker keeps, the least recently used dropped first


def network_key(scenario: Scenario) -> tuple[Any, ...]:
    """Everything of a scenario that ``_Model`` builds from (the network, its training's loss and
    optimizer, the control setting), nothing it is handed per run (data, initial weights, batch order)."""
    training = scenario.training
    return (scenario.input_dim, tuple((s.units, s.activation, s.use_bias, s.axis) for s in scenario.layers),
            scenario.keep_64_bit, None if training is None else (
                training.loss, training.clip, training.optimizer.name, training.optimizer.learning_rate,
                tuple(sorted((k, repr(v)) for k, v in training.optimizer.options.items()))))


def model_for(backend: str, plan: TrainingPlan) -> _Model:
    """The worker's model for the plan's network, training and dtype (built at the first call), reset to
    the plan's initial parameters and a fresh optimizer state."""
    key = (backend, plan.dtype, network_key(plan.scenario))
    m = _BUILT.pop(key, None) or _Model(backend, plan.scenario, plan.dtype)
    _BUILT[key] = m
    while len(_BUILT) > BUILT_KEPT:
        _BUILT.popitem(last=False)
    with m.settings():
        m.reset(plan.initial_params)
    return m


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
        m = model_for(self.backend, plan)
        with m.settings():
            outputs, narrowed = m.first_outputs(plan.X)
            trajectory = Trajectory(framework=self.name, dtype=plan.dtype, convention=m.convention,
                                    initial_params={k: v.copy() for k, v in plan.initial_params.items()},
                                    outputs_initial=outputs, narrowed_ops=narrowed)
            if plan.scenario.training is None:
                trajectory.outputs_final = trajectory.outputs_initial
                return trajectory
            if self.backend == "jax":
                self._run_jax(m, plan, trajectory)
            else:
                self._run_torch(m, plan, trajectory)
            trajectory.outputs_final = m.outputs(plan.X)
            return trajectory

    @staticmethod
    def _run_jax(m: _Model, plan: TrainingPlan, trajectory: Trajectory) -> None:
        if plan.max_steps:
            narrowed, computed = m.step_probe(*plan.batch(0))
            trajectory.narrowed_ops.update(narrowed)
            trajectory.computed_dtypes = dict(computed)
        n, stopped, losses, grads, params, rows = m.run_jax(plan, plan.max_steps)
        dtype = np.dtype(plan.dtype)  # recorded in the run's dtype, as the reference records
        trajectory.losses = losses.astype(dtype)
        trajectory.grads = {k: g.astype(dtype) for k, g in grads.items()}
        trajectory.params = {k: p.astype(dtype) for k, p in params.items()}
        trajectory.stopped_early_at = n if stopped else None
        all_rows = RowIds(plan.X).ids(plan.X)
        batches = _Batches.of(plan)
        trajectory.batch_rows = [all_rows] * n if batches.full else [
            all_rows[rows[t, :batches.rows(t)]] for t in range(n)]

    @staticmethod
    def _run_torch(m: _Model, plan: TrainingPlan, trajectory: Trajectory) -> None:
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
            recorder.record(_view(loss)[()], {n: _view(g) for n, g in zip(m.names, grads)},
                            {n: _view(v.value) for n, v in zip(m.names, m.variables)})
            trajectory.batch_rows.append(all_rows if xb is plan.X else rows.ids(xb))
        recorder.finish(trajectory)

    def trace_step(self, plan: TrainingPlan, step: int) -> Params:
        m = model_for(self.backend, plan)
        with m.settings():
            xb, yb = plan.batch(step, full=False)
            if self.backend == "jax":  # the run's own steps, from its compiled loop
                _, _, losses, grads, params, _ = m.run_jax(plan, step + 1)
                before = plan.initial_params if step == 0 else {k: p[step - 1] for k, p in params.items()}
                trace: Params = {f"params {n}": before[n].copy() for n in m.names}
                keras_tf.set_params(m.layers, before)
                trace.update({f"output layers.{i}": a for i, a in enumerate(m.outputs(xb))})
                trace["loss"] = np.array(losses[step])
                trace.update({f"gradient {n}": g[step].copy() for n, g in grads.items()})
                trace.update({f"updated {n}": p[step].copy() for n, p in params.items()})
                return trace
            for t in range(step):
                m.train_step(*plan.batch(t, full=False))
            trace = {f"params {n}": v for n, v in m.params().items()}
            trace.update({f"output layers.{i}": a for i, a in enumerate(m.outputs(xb))})
            loss, torch_grads = m.train_step(xb, yb)
            trace["loss"] = _to_numpy(loss)
            trace.update({f"gradient {n}": _to_numpy(g) for n, g in zip(m.names, torch_grads)})
            trace.update({f"updated {n}": v for n, v in m.params().items()})
            return trace

    def forward(self, scenario: Scenario, params: Params, X: np.ndarray) -> list[np.ndarray]:
        m = model_for(self.backend, _forward_plan(scenario, params, X))
        with m.settings():
            return m.outputs(X)

    def loss(self, scenario: Scenario, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        keras, training = import_keras_on(self.backend), scenario.training_spec
        with keras_tf.floatx(keras, y_pred.dtype.name), keep_64_bit() if scenario.keep_64_bit \
                else contextlib.nullcontext():
            return _to_numpy(keras_tf.build_loss(keras, training.loss, training.clip)(y_true, y_pred))

    def gradients(self, scenario: Scenario, params: Params, X: np.ndarray,
                  y: np.ndarray) -> tuple[np.ndarray, Params]:
        m = model_for(self.backend, _forward_plan(scenario, params, X, y))
        with m.settings():
            loss, grads = m.loss_and_grads(X, y)
            return _to_numpy(loss), {n: _to_numpy(g) for n, g in zip(m.names, grads)}

    def fit_baseline_seconds(self, plan: TrainingPlan) -> float | None:
        return None


def _forward_plan(scenario: Scenario, params: Params, X: np.ndarray, y: np.ndarray | None = None) -> TrainingPlan:
    """A one-batch plan carrying ``params`` and ``X`` (what ``_Model`` is built from)."""
    n = X.shape[0]
    return TrainingPlan(scenario=scenario, dtype=X.dtype.name, X=X, y=X[:, :0] if y is None else y,
                        initial_params=params, orders=np.arange(n)[None, :], bounds=((0, n),))


ADAPTERS = {f"keras@{b}": KerasOnBackend(b) for b in BACKENDS}
