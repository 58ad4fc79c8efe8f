"""Keras on JAX: ``model.stateless_call`` under ``jax.value_and_grad``, then
``optimizer.stateless_apply``; every step of a run in one compiled ``jax.lax.while_loop`` (batches
gathered, the early stop tested and each step recorded inside it), traced once per worker for each
network, training, dtype and batch order (``keras_model.model_for``); float64 needs
``jax_enable_x64``, set before Keras is imported (``keras_backend_model.import_keras_on``).

Compiling the loop is most of a small run's cost (0.5-0.8 s of XLA on this 2-core machine, against
0.05 s to trace and lower it), so a worker keeps the executables it compiled (``EXECUTABLES_KEPT``),
keyed by everything XLA compiles: the lowered program, byte for byte, with its constants. A model
built again after ``keras_model.model_for`` dropped it (a traced step made after the rest of the
catalogue's runs) traces and lowers its loop again, then finds the same program already compiled:
the same executable, so the same numbers. The dtype probe of a run is read from the loop's own trace.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.run.adapters import keras_tf
from harness.run.adapters.keras_backend_model import BackendModel
from harness.run.adapters.keras_narrowing import narrowed_in_jaxpr
from harness.run.adapters.protocol import Params
from harness.run.plan import TrainingPlan
from harness.run.trajectory import RowIds, Trajectory, dtype_names


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


class JaxModel(BackendModel):
    """The Keras model on JAX, with its compiled step (``_step``) and loops (``_loop``)."""

    backend = "jax"

    def __init__(self, scenario: Any, dtype: str) -> None:
        self._loops: dict[_Batches, Any] = {}
        self._compiled: dict[tuple[Any, ...], _Compiled] = {}  # by _signature
        self._probes: dict[tuple[Any, ...], tuple[dict[str, str], dict[str, str]]] = {}
        super().__init__(scenario, dtype)
        if scenario.training is not None:
            self._make_step()

    def _make_step(self) -> None:
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

    def _loop(self, batches: _Batches) -> Any:
        """Every step of a plan with this batch order in one compiled ``jax.lax.while_loop`` (the
        step is ``_make_step``'s), recording what the comparison reads: each step's loss (in its
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

    def _compiled_for(self, plan: TrainingPlan, args: tuple[Any, ...]) -> "_Compiled":
        """The plan's loop (``_loop``) traced for ``args`` (``run_steps``'), with what its trace shows,
        and compiled (``_executable``: once per program in this worker)."""
        key = _signature(plan)
        if key not in self._compiled:
            traced = self._loop(_Batches.of(plan)).trace(*args)
            narrowed: dict[str, str] = {}
            narrowed_in_jaxpr(traced.jaxpr.jaxpr, narrowed)
            *_, (losses, grads, _, _) = traced.out_info
            self._compiled[key] = _Compiled(_executable(traced.lower(), traced.jaxpr.consts), narrowed, dtype_names(
                parameters=self.variables[0].value, loss=losses, gradients=grads[0]))
        return self._compiled[key]

    def run_steps(self, plan: TrainingPlan, steps: int) -> tuple[int, bool, Any, Params, Params, np.ndarray]:
        """The plan's first ``steps`` steps in the compiled loop, from the current parameters and
        optimizer state: the steps made, whether the early stop ended them, the losses, gradients and
        parameters of each step, the rows each gathered; the model's variables hold the final state."""
        trainable = [v.value for v in self.model.trainable_variables]
        opt = [v.value for v in self.optimizer.variables]
        args = (trainable, opt, plan.X, plan.y, plan.orders, steps)
        t, stopped, _, trainable, opt, (losses, grads, params, rows) = self._compiled_for(plan, args).executable(
            *args)
        for v, value in zip(self.model.trainable_variables, trainable):
            v.assign(value)
        for v, value in zip(self.optimizer.variables, opt):
            v.assign(value)
        n = int(t)
        return (n, bool(stopped), np.asarray(losses)[:n], {k: np.asarray(g)[:n] for k, g in zip(self.names, grads)},
                {k: np.asarray(p)[:n] for k, p in zip(self.names, params)}, np.asarray(rows)[:n])

    def loss_and_grads(self, xb: np.ndarray, yb: np.ndarray) -> tuple[Any, list[Any]]:
        import jax

        trainable = [v.value for v in self.model.trainable_variables]
        loss, grads = jax.value_and_grad(lambda t: self._loss_at(t, xb, yb))(trainable)
        return loss, [grads[i] for i in self._order]

    def _loss_at(self, trainable: list[Any], xb: np.ndarray, yb: np.ndarray) -> Any:
        y_pred, _ = self.model.stateless_call(trainable, [v.value for v in self.model.non_trainable_variables], xb,
                                              training=True)
        return self.loss_fn(yb, y_pred)

    def first_outputs(self, X: np.ndarray) -> tuple[list[np.ndarray], dict[str, str]]:
        """``outputs``, and the operations of the forward pass that narrowed, from its jaxpr (traced once
        per shape of ``X``)."""
        key = ("forward", X.shape)
        if key not in self._probes:
            import jax

            narrowed: dict[str, str] = {}
            trainable = [v.value for v in self.model.trainable_variables]
            narrowed_in_jaxpr(jax.make_jaxpr(lambda t: self.model.stateless_call(
                t, [v.value for v in self.model.non_trainable_variables], X)[0])(trainable).jaxpr, narrowed)
            self._probes[key] = narrowed, {}
        return self.outputs(X), dict(self._probes[key][0])

    def train(self, plan: TrainingPlan, trajectory: Trajectory) -> None:
        n, stopped, losses, grads, params, rows = self.run_steps(plan, plan.max_steps)
        if plan.max_steps:  # the dtype probe: every operation of a training step that returned a narrower float
            # than its float64 inputs, and the dtypes of its loss and gradients, from the loop's trace
            compiled = self._compiled[_signature(plan)]
            trajectory.narrowed_ops.update(compiled.narrowed)
            trajectory.computed_dtypes = dict(compiled.computed)
        dtype = np.dtype(plan.dtype)  # recorded in the run's dtype, as the reference records
        trajectory.losses = losses.astype(dtype)
        trajectory.grads = {k: g.astype(dtype) for k, g in grads.items()}
        trajectory.params = {k: p.astype(dtype) for k, p in params.items()}
        trajectory.stopped_early_at = n if stopped else None
        all_rows = RowIds(plan.X).ids(plan.X)
        batches = _Batches.of(plan)
        trajectory.batch_rows = [all_rows] * n if batches.full else [
            all_rows[rows[t, :batches.rows(t)]] for t in range(n)]

    def trace_step(self, plan: TrainingPlan, step: int) -> Params:
        """The run's own steps, from its compiled loop; step ``step``'s outputs from its parameters."""
        xb, _ = plan.batch(step, full=False)
        _, _, losses, grads, params, _ = self.run_steps(plan, step + 1)
        before = plan.initial_params if step == 0 else {k: p[step - 1] for k, p in params.items()}
        trace: Params = {f"params {n}": before[n].copy() for n in self.names}
        keras_tf.set_params(self.layers, before)
        trace.update({f"output layers.{i}": a for i, a in enumerate(self.outputs(xb))})
        trace["loss"] = np.array(losses[step])
        trace.update({f"gradient {n}": g[step].copy() for n, g in grads.items()})
        trace.update({f"updated {n}": p[step].copy() for n, p in params.items()})
        return trace


def _signature(plan: TrainingPlan) -> tuple[Any, ...]:
    """What a model's compiled loop depends on of a plan: its batch order, and the shapes and dtypes of its
    data and epoch orders."""
    return (_Batches.of(plan), *((a.shape, a.dtype) for a in (plan.X, plan.y, plan.orders)))


@dataclass(frozen=True)
class _Compiled:
    """A loop's executable, and what its trace shows: each operation of its training step that returned a
    narrower float than its float64 inputs (Keras function -> dtype, ``narrowed_in_jaxpr``), and the
    dtypes of the parameters, the loss and the gradients (``dtype_names``' kinds)."""

    executable: Any
    narrowed: dict[str, str]
    computed: dict[str, str]


EXECUTABLES_KEPT = 64  # compiled loops a worker keeps (~0.1 MB each), the least recently used dropped first
_EXECUTABLES: "OrderedDict[bytes, Any]" = OrderedDict()


def _executable(lowered: Any, consts: list[Any]) -> Any:
    """``lowered`` compiled, or the executable this worker compiled before from the same program: its
    StableHLO, every attribute printed whole, without the source locations (they name the optimizer's
    Keras name scope, ``adam_1`` in a model built again), and the constants its trace closed over (an
    executable holds the constants it was lowered with, ``jax.stages.Compiled``), byte for byte."""
    digest = hashlib.sha256(lowered.compiler_ir("stablehlo").operation.get_asm(
        binary=True, print_generic_op_form=True, large_elements_limit=None, large_resource_limit=None,
        enable_debug_info=False))
    for c in consts:
        a = np.asarray(c)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    key = digest.digest()
    executable = _EXECUTABLES.pop(key, None)
    if executable is None:
        executable = lowered.compile()
    _EXECUTABLES[key] = executable
    while len(_EXECUTABLES) > EXECUTABLES_KEPT:
        _EXECUTABLES.popitem(last=False)
    return executable
