"""Keras 3 on the TensorFlow backend.

The model is real Keras (``keras.layers.Dense``, ``keras.optimizers``); the
training loop is ours, compiled: a ``tf.function`` runs the steps (``CHUNK_STEPS`` per
call) with a ``tf.GradientTape`` and ``optimizer.apply_gradients``, recording loss,
gradients and parameters in ``tf.TensorArray``s. ``model.fit`` is never used
for parity runs (it shuffles on its own and costs ~50 ms per epoch here).
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np

from harness.run import environment
from harness.run.adapters.protocol import Adapter, Params, check_expressible, missing
from harness.run.plan import TrainingPlan
from harness.run.threads import framework_threads
from harness.run.trajectory import RowIds, Trajectory, dtype_names
from harness.spec.conventions import native
from harness.spec.scenario import OptimizerSpec, Scenario
from reference.losses import KERAS_EPSILON, TORCH_GRAD_FLOOR, TORCH_LOG_FLOOR
from reference.network import bias_name, kernel_name
from reference.optimizers import hyperparameters


@contextlib.contextmanager
def _quiet_stderr():
    """TensorFlow's C++ runtime writes to fd 2 at import, before any log level applies."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_keras():
    """Import TensorFlow and Keras quietly, pinned to the TF backend and deterministic ops."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name, value in environment.DEFAULTS.items():  # oneDNN off, unless the user set it
        os.environ.setdefault(name, value)
    os.environ["KERAS_BACKEND"] = "tensorflow"
    with _quiet_stderr():
        import keras
        import tensorflow as tf
    tf.get_logger().setLevel("ERROR")
    tf.config.experimental.enable_op_determinism()
    if not _THREADS_SET:  # as torch (harness.run.threads: 1 unless $NN_PARITY_THREADS says otherwise);
        # settable only before TensorFlow's first op
        try:
            tf.config.threading.set_intra_op_parallelism_threads(framework_threads())
            tf.config.threading.set_inter_op_parallelism_threads(framework_threads())
        except RuntimeError:  # TensorFlow already ran an op in this process: keep its threads
            pass
        _THREADS_SET.append(True)
    return tf, keras


_THREADS_SET: list[bool] = []


@contextlib.contextmanager
def floatx(keras, dtype: str):
    previous = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(previous)


def build_model(keras, scenario, dtype: str):
    """A functional Keras model of the scenario's dense layers, every dtype explicit."""
    inputs = keras.Input(shape=(scenario.input_dim,), dtype=dtype, name="inputs")
    a, dense_layers = inputs, []
    for i, spec in enumerate(scenario.layers):
        activation = spec.activation
        if activation == "softmax" and spec.axis != -1:
            axis = spec.axis
            activation = lambda z, axis=axis: keras.activations.softmax(z, axis=axis)  # noqa: E731
        layer = keras.layers.Dense(spec.units, activation=activation, use_bias=spec.use_bias,
                                   dtype=dtype, name=f"dense_{i}")
        a = layer(a)
        dense_layers.append(layer)
    return keras.Model(inputs, a), dense_layers


def set_params(dense_layers, params: dict[str, np.ndarray]) -> None:
    for i, layer in enumerate(dense_layers):
        weights = [params[kernel_name(i)]]
        if layer.use_bias:
            weights.append(params[bias_name(i)])
        layer.set_weights(weights)


def named_variables(dense_layers) -> list[tuple[str, object]]:
    out = []
    for i, layer in enumerate(dense_layers):
        out.append((kernel_name(i), layer.kernel))
        if layer.use_bias:
            out.append((bias_name(i), layer.bias))
    return out


# Everything else a Keras optimizer could do to the update, pinned off.
_KERAS_OPTIMIZER_OFF = dict(weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                            loss_scale_factor=None, gradient_accumulation_steps=None)


def build_optimizer(keras, spec: OptimizerSpec, *, file: str | Path = "<scenario>",
                    adapter: Adapter | None = None):
    """Keras' own optimizer class with every hyper-parameter explicit (omitted options at Keras'
    defaults), and the convention ``adapter`` (default: Keras on TensorFlow) computes with it. A
    spec pinning another convention where it differs is a ``BadInput``: Keras only runs
    ``keras.optimizers.*``.

    Build it under ``floatx(keras, dtype)``: its learning-rate variable takes floatx's dtype.
    """
    classes = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}
    if spec.name not in classes:
        raise ValueError(f"no Keras optimizer for {spec.name!r}")
    adapter = adapter or ADAPTER
    check_expressible(adapter, spec, file=file)
    h = hyperparameters(spec, convention="keras")  # Keras' option names, each one explicit
    optimizer = classes[spec.name](**h, **_KERAS_OPTIMIZER_OFF)
    return optimizer, adapter.native_convention(spec)


def build_loss(keras, loss: str, clip: str):
    """The batch-mean loss, with the cross-entropy guard pinned (never Keras' default).

    MSE is Keras' own ``MeanSquaredError``. Keras' cross-entropies on the TF
    backend would silently swap a sigmoid/softmax output for its logits and skip
    clipping, so the named guard is written out in ``keras.ops``.
    """
    ops = keras.ops
    if loss == "mse":
        return keras.losses.MeanSquaredError()

    def log_guarded(p):
        if clip == "keras":
            return ops.log(ops.clip(p, KERAS_EPSILON, 1.0 - KERAS_EPSILON))
        if clip == "torch":
            return ops.maximum(ops.log(p), TORCH_LOG_FLOOR)
        return ops.log(p)

    if loss == "binary_crossentropy":
        def bce(y, p):
            if clip == "keras":
                p = ops.clip(p, KERAS_EPSILON, 1.0 - KERAS_EPSILON)
                return -ops.mean(y * ops.log(p) + (1.0 - y) * ops.log(1.0 - p))
            value = -ops.mean(y * log_guarded(p) + (1.0 - y) * log_guarded(1.0 - p))
            if clip != "torch":
                return value
            # torch's BCELoss backward, dL/dp = (p - y) / max(p (1 - p), 1e-12) / n (reference.losses), not
            # the clamp's 1/p: the value as computed, plus a term that is exactly 0 with that gradient.
            coef = ops.stop_gradient((p - y) / ops.maximum(p * (1.0 - p), TORCH_GRAD_FLOOR))
            surrogate = ops.mean(coef * p)
            return ops.stop_gradient(value) + (surrogate - ops.stop_gradient(surrogate))
        return bce

    if loss == "categorical_crossentropy":
        def cce(y, p):
            if clip == "keras":
                p = p / ops.sum(p, axis=-1, keepdims=True)
            return -ops.mean(ops.sum(y * log_guarded(p), axis=-1))
        return cce
    raise ValueError(f"no Keras loss for {loss!r}")


def layer_outputs(dense_layers, X: np.ndarray) -> list[np.ndarray]:
    """Each layer's activations on X, by calling the Keras layers in turn."""
    out, a = [], X
    for layer in dense_layers:
        a = layer(a)
        out.append(np.array(a))
    return out


def _run(plan: TrainingPlan) -> Trajectory:
    tf, keras = import_keras()
    scenario, training, dtype = plan.scenario, plan.scenario.training, plan.dtype
    with floatx(keras, dtype):
        model, dense_layers = build_model(keras, scenario, dtype)
        set_params(dense_layers, plan.initial_params)
        outputs_initial = layer_outputs(dense_layers, plan.X)
        if training is None:
            return Trajectory(framework=ADAPTER.name, dtype=dtype, outputs_initial=outputs_initial,
                              outputs_final=outputs_initial,
                              initial_params={k: v.copy() for k, v in plan.initial_params.items()})
        optimizer, convention = build_optimizer(keras, training.optimizer, file=scenario.path)
        loss_fn = build_loss(keras, training.loss, training.clip)
        names, variables = zip(*named_variables(dense_layers))
        optimizer.build(list(variables))
        steps, losses, grads, params, batches = _compiled_loop(tf, model, optimizer, loss_fn, list(variables), plan)
        outputs_final = layer_outputs(dense_layers, plan.X)
        computed = dtype_names(parameters=variables[0], loss=loss_fn(tf.constant(plan.y[:1]), model(plan.X[:1])),
                               gradients=variables[0])  # tape gradients take their variable's dtype
    trajectory = Trajectory(framework=ADAPTER.name, dtype=dtype, convention=convention,
                            initial_params={k: v.copy() for k, v in plan.initial_params.items()},
                            outputs_initial=outputs_initial, outputs_final=outputs_final)
    trajectory.losses = losses
    trajectory.params = dict(zip(names, params))
    trajectory.grads = dict(zip(names, grads))
    trajectory.computed_dtypes = computed
    all_rows = RowIds(plan.X).ids(plan.X)
    trajectory.batch_rows = [all_rows] * steps if batches is None else [all_rows[b] for b in batches]
    if steps < plan.max_steps and plan.early_stop_tol is not None:
        trajectory.stopped_early_at = steps
    return trajectory


CHUNK_STEPS = 1000  # steps per call of the compiled loop: Ctrl-C is honoured between calls


def _compiled_loop(tf, model, optimizer, loss_fn, variables, plan: TrainingPlan
                   ) -> tuple[int, np.ndarray, list[np.ndarray], list[np.ndarray], list[np.ndarray] | None]:
    """Every training step inside a compiled ``tf.while_loop``, run ``CHUNK_STEPS`` steps per call
    (Python only takes a Ctrl-C between calls into TensorFlow); the loss and gradients of the
    next step and the previous loss carry over from one call to the next, so the steps are the
    same computations whatever the chunking. Returns the steps made and, per step, the losses,
    the gradients and the parameters of each variable, and the indices each batch gathered from X
    (None for full batches in order, which are X itself)."""
    dtype = tf.as_dtype(plan.dtype)
    X = tf.constant(plan.X)
    y = tf.constant(plan.y)
    full = plan.is_full_batch_in_order
    orders = tf.constant(plan.orders, dtype=tf.int64)
    starts = tf.constant([b[0] for b in plan.bounds], dtype=tf.int64)
    ends = tf.constant([b[1] for b in plan.bounds], dtype=tf.int64)
    per_epoch = tf.constant(plan.batches_per_epoch, dtype=tf.int64)
    n_orders = tf.constant(plan.orders.shape[0], dtype=tf.int64)
    max_steps = plan.max_steps
    tol = plan.early_stop_tol

    def indices(step):
        order = orders[(step // per_epoch) % n_orders]
        b = step % per_epoch
        return order[starts[b]:ends[b]]

    def batch(step):
        if full:
            return X, y
        idx = indices(step)
        return tf.gather(X, idx), tf.gather(y, idx)

    def loss_and_grads(step):
        xb, yb = batch(step)
        with tf.GradientTape() as tape:
            loss = tf.cast(loss_fn(yb, model(xb, training=True)), dtype)
        return loss, tape.gradient(loss, variables)

    def keep_going(loss, previous):
        if tol is None:
            return tf.constant(True)
        # The labs' early stop, before the update: continue unless |loss - previous| < tol.
        # Written out as (d >= tol) or isnan(d), not logical_not(d < tol): TF's graph
        # optimiser rewrites logical_not(a < b) to a >= b, which is False for nan, so a
        # diverged run (inf - inf = nan) would stop where NumPy and torch keep going.
        d = tf.abs(loss - previous)
        return tf.logical_or(d >= tol, tf.math.is_nan(d))

    @tf.function(reduce_retracing=True)
    def first():
        loss, grads = loss_and_grads(tf.constant(0, dtype=tf.int64))
        return loss, tuple(grads)

    @tf.function(reduce_retracing=True)
    def chunk(step, previous, loss, grads, end):
        # The loss and gradients of step t are computed at the end of step t-1, so the
        # early-stop test sits in the loop condition and every write is unconditional.
        def arrays():
            return tuple(tf.TensorArray(dtype, size=0, dynamic_size=True, element_shape=v.shape) for v in variables)

        def body(step, previous, loss, grads, losses, grads_out, params_out, rows, sizes):
            optimizer.apply_gradients(zip(grads, variables))
            t = tf.cast(step - start, tf.int32)
            losses = losses.write(t, loss)
            if not full:  # the rows this step's batch gathered (``batch`` gathers ``indices``)
                idx = indices(step)
                rows, sizes = rows.write(t, idx), sizes.write(t, tf.size(idx, out_type=tf.int64))
            grads_out = tuple(ta.write(t, g) for ta, g in zip(grads_out, grads))
            params_out = tuple(ta.write(t, tf.convert_to_tensor(v)) for ta, v in zip(params_out, variables))
            next_loss, next_grads = loss_and_grads(step + 1)
            return step + 1, loss, next_loss, tuple(next_grads), losses, grads_out, params_out, rows, sizes

        def cond(step, previous, loss, grads, *_):
            return tf.logical_and(step < end, keep_going(loss, previous))

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

    loss, grads = first()
    step, previous = tf.constant(0, dtype=tf.int64), tf.constant(np.inf, dtype=dtype)
    pieces: list[tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]] = []
    batches: list[np.ndarray] = []
    while True:
        end = min(int(step) + CHUNK_STEPS, max_steps)
        step, previous, loss, grads, losses, grads_out, params_out, rows, sizes = chunk(
            step, previous, loss, grads, tf.constant(end, dtype=tf.int64))
        pieces.append((losses.numpy(), [g.numpy() for g in grads_out], [p.numpy() for p in params_out]))
        sizes_np = sizes.numpy()
        batches += np.split(rows.numpy(), np.cumsum(sizes_np)[:-1]) if sizes_np.size else []
        if int(step) < end or int(step) >= max_steps:  # stopped early, or done
            break
    return (int(step), np.concatenate([p[0] for p in pieces]),
            [np.concatenate([p[1][i] for p in pieces]) for i in range(len(variables))],
            [np.concatenate([p[2][i] for p in pieces]) for i in range(len(variables))],
            None if full else batches)


def _trace_step(plan: TrainingPlan, step: int) -> Params:
    """Replay steps ``0 .. step-1`` with the same model, loss and optimizer as ``run`` (one
    ``tf.function`` step, so the optimizer state is the run's), then record step ``step`` stage
    by stage, eagerly, as ``harness.run.trajectory.trace_stages`` names them."""
    tf, keras = import_keras()
    scenario, training, dtype = plan.scenario, plan.scenario.training_spec, plan.dtype
    with floatx(keras, dtype):
        model, dense_layers = build_model(keras, scenario, dtype)
        set_params(dense_layers, plan.initial_params)
        optimizer, _ = build_optimizer(keras, training.optimizer, file=scenario.path)
        loss_fn = build_loss(keras, training.loss, training.clip)
        names, variables = zip(*named_variables(dense_layers))
        optimizer.build(list(variables))

        @tf.function(reduce_retracing=True)
        def train_step(xb, yb):
            with tf.GradientTape() as tape:
                loss = tf.cast(loss_fn(yb, model(xb, training=True)), dtype)
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

        for t in range(step):
            idx = plan.batch_indices(t)
            train_step(tf.constant(plan.X[idx]), tf.constant(plan.y[idx]))
        idx = plan.batch_indices(step)
        xb, yb = tf.constant(plan.X[idx]), tf.constant(plan.y[idx])
        trace: dict[str, np.ndarray] = {f"params {n}": v.numpy().copy() for n, v in zip(names, variables)}
        with tf.GradientTape() as tape:
            a = xb
            for i, layer in enumerate(dense_layers):
                a = layer(a, training=True)
                trace[f"output layers.{i}"] = a.numpy().copy()
            loss = tf.cast(loss_fn(yb, a), dtype)
        grads = tape.gradient(loss, variables)
        trace["loss"] = loss.numpy().copy()
        trace.update({f"gradient {n}": g.numpy().copy() for n, g in zip(names, grads)})
        optimizer.apply_gradients(zip(grads, variables))
        trace.update({f"updated {n}": v.numpy().copy() for n, v in zip(names, variables)})
    return trace


class KerasAdapter:
    name: str = "keras"
    conventions: tuple[str, ...] = ("keras",)
    optimizer_module: str = "keras.optimizers"
    narrowing_rule: str | None = None  # it returns no 32-bit results from 64-bit inputs

    def available(self) -> str | None:
        return missing("tensorflow", "keras")

    def native_convention(self, spec: OptimizerSpec) -> str:
        return native(spec, "keras")

    def run(self, plan: TrainingPlan) -> Trajectory:
        return _run(plan)

    def trace_step(self, plan: TrainingPlan, step: int) -> Params:
        return _trace_step(plan, step)

    def forward(self, scenario: Scenario, params: Params, X: np.ndarray) -> list[np.ndarray]:
        _, keras = import_keras()
        dtype = X.dtype.name
        with floatx(keras, dtype):
            _, dense_layers = build_model(keras, scenario, dtype)
            set_params(dense_layers, params)
            return layer_outputs(dense_layers, X)

    def loss(self, scenario: Scenario, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        tf, keras = import_keras()
        training = scenario.training_spec
        with floatx(keras, y_pred.dtype.name):
            return np.asarray(build_loss(keras, training.loss, training.clip)(tf.constant(y_true),
                                                                               tf.constant(y_pred)))

    def gradients(self, scenario: Scenario, params: Params, X: np.ndarray,
                  y: np.ndarray) -> tuple[np.ndarray, Params]:
        """One ``tf.GradientTape`` over the model and the loss the training loop uses."""
        tf, keras = import_keras()
        assert scenario.training is not None, "gradients need a training loss"
        dtype = X.dtype.name
        with floatx(keras, dtype):
            model, dense_layers = build_model(keras, scenario, dtype)
            set_params(dense_layers, params)
            loss_fn = build_loss(keras, scenario.training.loss, scenario.training.clip)
            names, variables = zip(*named_variables(dense_layers))
            with tf.GradientTape() as tape:
                loss = tf.cast(loss_fn(tf.constant(y), model(tf.constant(X), training=True)), dtype)
            grads = tape.gradient(loss, list(variables))
        return np.asarray(loss), {n: np.asarray(g) for n, g in zip(names, grads)}

    def fit_baseline_seconds(self, plan: TrainingPlan) -> float | None:
        """``model.compile(optimizer, loss); model.fit(X, y, epochs=E, batch_size=B, shuffle=False)``,
        the naive loop the labs use."""
        _, keras = import_keras()
        scenario, tr = plan.scenario, plan.scenario.training
        assert tr is not None, "a forward-only scenario does not train"
        with floatx(keras, plan.dtype):
            model, layers = build_model(keras, scenario, plan.dtype)
            set_params(layers, plan.initial_params)
            optimizer, _ = build_optimizer(keras, tr.optimizer, file=scenario.path)
            model.compile(optimizer=optimizer, loss=tr.loss)
            batch = plan.X.shape[0] if tr.batch_size is None else tr.batch_size
            start = time.perf_counter()
            model.fit(plan.X, plan.y, epochs=tr.epochs, batch_size=batch, shuffle=False, verbose=0)
            return time.perf_counter() - start


ADAPTER = KerasAdapter()
