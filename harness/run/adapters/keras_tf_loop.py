"""Keras on TensorFlow's training loop: every step of a run in a compiled ``tf.while_loop``.

A ``TFModel`` is built once per worker for each network, training and dtype
(``keras_model.model_for``) with its ``tf.function``\\s: the run's data, batch order and state are
their arguments, never captured, so the next run of the same network (a run of the other data, a
cut plan's spot check, a benchmark's repeat) reuses the traced graphs. TensorFlow traces a function
again for arguments of another shape (as when each run built its own), so a graph always sees the
shapes of the run it computes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from harness.run.adapters.keras_model import KerasModel
from harness.run.adapters.protocol import Params
from harness.run.plan import TrainingPlan
from harness.run.trajectory import RowIds, Trajectory, dtype_names

CHUNK_STEPS = 1000  # steps per call of the compiled loop: Ctrl-C is honoured between calls

Loop = tuple[int, np.ndarray, list[np.ndarray], list[np.ndarray], "list[np.ndarray] | None"]


class TFModel(KerasModel):
    """The Keras model on TensorFlow with its compiled loop (``compiled_loop``) and one compiled
    training step (``trace_step``'s replay)."""

    backend = "tensorflow"

    def __init__(self, scenario: Any, dtype: str) -> None:
        super().__init__(scenario, dtype)
        self.tf = _tf()
        self._functions: dict[tuple[bool, bool], tuple[Any, Any]] = {}
        self._train_step: Any = None

    def import_keras(self) -> Any:
        from harness.run.adapters.keras_tf import import_keras

        return import_keras()[1]

    def loss_and_grads(self, xb: Any, yb: Any) -> tuple[Any, list[Any]]:
        tf = self.tf
        with tf.GradientTape() as tape:
            loss = tf.cast(self.loss_fn(yb, self.model(xb, training=True)), tf.as_dtype(self.dtype))
        return loss, tape.gradient(loss, self.variables)

    def train(self, plan: TrainingPlan, trajectory: Trajectory) -> None:
        from harness.run.adapters import keras_tf

        tf = self.tf
        steps, losses, grads, params, batches = keras_tf._compiled_loop(self, plan)
        trajectory.losses = losses
        trajectory.params = dict(zip(self.names, params))
        trajectory.grads = dict(zip(self.names, grads))
        trajectory.computed_dtypes = dtype_names(  # tape gradients take their variable's dtype
            parameters=self.variables[0], loss=self.loss_fn(tf.constant(plan.y[:1]), self.model(plan.X[:1])),
            gradients=self.variables[0])
        all_rows = RowIds(plan.X).ids(plan.X)
        trajectory.batch_rows = [all_rows] * steps if batches is None else [all_rows[b] for b in batches]
        if steps < plan.max_steps and plan.early_stop_tol is not None:
            trajectory.stopped_early_at = steps

    def functions(self, *, full: bool, stops: bool) -> tuple[Any, Any]:
        """``first`` (the loss and gradients of step 0) and ``chunk`` (the steps from ``step`` to ``end``,
        or to the early stop), compiled; ``full``: every batch is X in order; ``stops``: the labs'
        early stop is tested."""
        if (full, stops) not in self._functions:
            self._functions[full, stops] = _loop_functions(self, full=full, stops=stops)
        return self._functions[full, stops]

    def trace_step(self, plan: TrainingPlan, step: int) -> Params:
        """Replay steps ``0 .. step-1`` with the run's model, loss and optimizer (one ``tf.function``
        step, so the optimizer state is the run's), then record step ``step`` stage by stage, eagerly."""
        tf, variables, dtype = self.tf, self.variables, tf_dtype(self)
        if self._train_step is None:
            loss_fn, model, optimizer = self.loss_fn, self.model, self.optimizer

            @tf.function(reduce_retracing=True)
            def train_step(xb: Any, yb: Any) -> None:
                with tf.GradientTape() as tape:
                    loss = tf.cast(loss_fn(yb, model(xb, training=True)), dtype)
                optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            self._train_step = train_step
        for t in range(step):
            idx = plan.batch_indices(t)
            self._train_step(tf.constant(plan.X[idx]), tf.constant(plan.y[idx]))
        idx = plan.batch_indices(step)
        xb, yb = tf.constant(plan.X[idx]), tf.constant(plan.y[idx])
        trace: dict[str, np.ndarray] = {f"params {n}": v.numpy().copy() for n, v in zip(self.names, variables)}
        with tf.GradientTape() as tape:
            a = xb
            for i, layer in enumerate(self.layers):
                a = layer(a, training=True)
                trace[f"output layers.{i}"] = a.numpy().copy()
            loss = tf.cast(self.loss_fn(yb, a), dtype)
        grads = tape.gradient(loss, variables)
        trace["loss"] = loss.numpy().copy()
        trace.update({f"gradient {n}": g.numpy().copy() for n, g in zip(self.names, grads)})
        self.optimizer.apply_gradients(zip(grads, variables))
        trace.update({f"updated {n}": v.numpy().copy() for n, v in zip(self.names, variables)})
        return trace


def _tf() -> Any:
    from harness.run.adapters.keras_tf import import_keras

    return import_keras()[0]


def tf_dtype(m: TFModel) -> Any:
    return m.tf.as_dtype(m.dtype)


def _loop_functions(m: TFModel, *, full: bool, stops: bool) -> tuple[Any, Any]:
    """``first`` and ``chunk`` of ``TFModel.functions``. Their arguments: X, y, the epochs' row
    orders, the batches' starts and ends within an epoch, the early stop's tolerance."""
    tf, model, optimizer, loss_fn, variables, dtype = m.tf, m.model, m.optimizer, m.loss_fn, m.variables, tf_dtype(m)

    def indices(data: Any, step: Any) -> Any:
        _, _, orders, starts, ends, _ = data
        per_epoch = tf.shape(starts, out_type=tf.int64)[0]
        order = orders[(step // per_epoch) % tf.shape(orders, out_type=tf.int64)[0]]
        b = step % per_epoch
        return order[starts[b]:ends[b]]

    def batch(data: Any, step: Any) -> Any:
        X, y = data[0], data[1]
        if full:
            return X, y
        idx = indices(data, step)
        return tf.gather(X, idx), tf.gather(y, idx)

    def loss_and_grads(data: Any, step: Any) -> Any:
        xb, yb = batch(data, step)
        with tf.GradientTape() as tape:
            loss = tf.cast(loss_fn(yb, model(xb, training=True)), dtype)
        return loss, tape.gradient(loss, variables)

    def keep_going(data: Any, loss: Any, previous: Any) -> Any:
        if not stops:
            return tf.constant(True)
        # The labs' early stop, before the update: continue unless |loss - previous| < tol.
        # Written out as (d >= tol) or isnan(d), not logical_not(d < tol): TF's graph
        # optimiser rewrites logical_not(a < b) to a >= b, which is False for nan, so a
        # diverged run (inf - inf = nan) would stop where NumPy and torch keep going.
        d = tf.abs(loss - previous)
        return tf.logical_or(d >= data[5], tf.math.is_nan(d))

    @tf.function(autograph=False)
    def first(data: Any) -> Any:
        loss, grads = loss_and_grads(data, tf.constant(0, dtype=tf.int64))
        return loss, tuple(grads)

    @tf.function(autograph=False)
    def chunk(data: Any, step: Any, previous: Any, loss: Any, grads: Any, end: Any) -> Any:
        # The loss and gradients of step t are computed at the end of step t-1, so the
        # early-stop test sits in the loop condition and every write is unconditional.
        def arrays() -> Any:
            return tuple(tf.TensorArray(dtype, size=0, dynamic_size=True, element_shape=v.shape) for v in variables)

        def body(step: Any, previous: Any, loss: Any, grads: Any, losses: Any, grads_out: Any, params_out: Any,
                 rows: Any, sizes: Any) -> Any:
            optimizer.apply_gradients(zip(grads, variables))
            t = tf.cast(step - start, tf.int32)
            losses = losses.write(t, loss)
            if not full:  # the rows this step's batch gathered (``batch`` gathers ``indices``)
                idx = indices(data, step)
                rows, sizes = rows.write(t, idx), sizes.write(t, tf.size(idx, out_type=tf.int64))
            grads_out = tuple(ta.write(t, g) for ta, g in zip(grads_out, grads))
            params_out = tuple(ta.write(t, tf.convert_to_tensor(v)) for ta, v in zip(params_out, variables))
            next_loss, next_grads = loss_and_grads(data, step + 1)
            return step + 1, loss, next_loss, tuple(next_grads), losses, grads_out, params_out, rows, sizes

        def cond(step: Any, previous: Any, loss: Any, grads: Any, *_: Any) -> Any:
            return tf.logical_and(step < end, keep_going(data, loss, previous))

        start = step
        state = (step, previous, loss, grads, tf.TensorArray(dtype, size=0, dynamic_size=True, element_shape=()),
                 arrays(), arrays(),
                 tf.TensorArray(tf.int64, size=0, dynamic_size=True, infer_shape=False, element_shape=[None]),
                 tf.TensorArray(tf.int64, size=0, dynamic_size=True, element_shape=()))
        step, previous, loss, grads, losses, grads_out, params_out, rows, sizes = tf.while_loop(
            cond, body, state, parallel_iterations=1)
        if full:
            rows_out, sizes_out = tf.zeros([0], tf.int64), tf.zeros([0], tf.int64)
        else:
            rows_out, sizes_out = rows.concat(), sizes.stack()
        return (step, previous, loss, grads, losses.stack(), [g.stack() for g in grads_out],
                [p.stack() for p in params_out], rows_out, sizes_out)

    return first, chunk


def compiled_loop(m: TFModel, plan: TrainingPlan) -> Loop:
    """Every training step inside the compiled ``tf.while_loop``, run ``CHUNK_STEPS`` steps per call
    (Python only takes a Ctrl-C between calls into TensorFlow); the loss and gradients of the
    next step and the previous loss carry over from one call to the next, so the steps are the
    same computations whatever the chunking. Returns the steps made and, per step, the losses,
    the gradients and the parameters of each variable, and the indices each batch gathered from X
    (None for full batches in order, which are X itself)."""
    tf, dtype = m.tf, tf_dtype(m)
    full, tol, max_steps = plan.is_full_batch_in_order, plan.early_stop_tol, plan.max_steps
    first, chunk = m.functions(full=full, stops=tol is not None)
    data = (tf.constant(plan.X), tf.constant(plan.y), tf.constant(plan.orders, dtype=tf.int64),
            tf.constant([b[0] for b in plan.bounds], dtype=tf.int64),
            tf.constant([b[1] for b in plan.bounds], dtype=tf.int64),
            tf.constant(0.0 if tol is None else tol, dtype=dtype))
    loss, grads = first(data)
    step, previous = tf.constant(0, dtype=tf.int64), tf.constant(np.inf, dtype=dtype)
    pieces: list[tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]] = []
    batches: list[np.ndarray] = []
    while True:
        end = min(int(step) + CHUNK_STEPS, max_steps)
        step, previous, loss, grads, losses, grads_out, params_out, rows, sizes = chunk(
            data, step, previous, loss, grads, tf.constant(end, dtype=tf.int64))
        pieces.append((losses.numpy(), [g.numpy() for g in grads_out], [p.numpy() for p in params_out]))
        sizes_np = sizes.numpy()
        batches += np.split(rows.numpy(), np.cumsum(sizes_np)[:-1]) if sizes_np.size else []
        if int(step) < end or int(step) >= max_steps:  # stopped early, or done
            break
    n = len(m.variables)
    return (int(step), np.concatenate([p[0] for p in pieces]),
            [np.concatenate([p[1][i] for p in pieces]) for i in range(n)],
            [np.concatenate([p[2][i] for p in pieces]) for i in range(n)],
            None if full else batches)
