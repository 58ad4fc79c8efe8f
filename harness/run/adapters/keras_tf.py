"""Keras 3 on the TensorFlow backend.

The model is real Keras (``keras.layers.Dense``, ``keras.optimizers``); the
training loop is ours, compiled: a ``tf.function`` runs the steps (``CHUNK_STEPS`` per
call) with a ``tf.GradientTape`` and ``optimizer.apply_gradients``, recording loss,
gradients and parameters in ``tf.TensorArray``s (``keras_tf_loop``). ``model.fit`` is never used
for parity runs (it shuffles on its own and costs ~50 ms per epoch here). A worker builds the
model and traces its functions once per network, training and dtype (``keras_model.model_for``).

This module also holds the builders every Keras backend shares (``build_model``, ``set_params``,
``build_optimizer``, ``build_loss``).
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np

from harness.run import environment
from harness.run.adapters import keras_tf_loop
from harness.run.adapters.keras_model import forward_plan, model_for, run_model
from harness.run.adapters.protocol import FLUSHED, Adapter, Params, check_expressible, missing
from harness.run.plan import TrainingPlan
from harness.run.threads import framework_threads
from harness.run.trajectory import Trajectory
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


def _zeros(shape, dtype=None) -> np.ndarray:
    """Every layer's values until ``set_params`` sets the plan's (before any use: ``keras_model.model_for``),
    made by NumPy: building a layer draws no random numbers (Keras' default, ``glorot_uniform``, costs an
    XLA compile per shape on JAX: 0.2 s of a fuzzed scenario's run there)."""
    return np.zeros(shape, dtype=dtype)


def build_model(keras, scenario, dtype: str):
    """A functional Keras model of the scenario's dense layers, every dtype explicit; its values are
    placeholders (``_zeros``) until ``set_params``."""
    inputs = keras.Input(shape=(scenario.input_dim,), dtype=dtype, name="inputs")
    a, dense_layers = inputs, []
    for i, spec in enumerate(scenario.layers):
        activation = spec.activation
        if activation == "softmax" and spec.axis != -1:
            axis = spec.axis
            activation = lambda z, axis=axis: keras.activations.softmax(z, axis=axis)  # noqa: E731
        layer = keras.layers.Dense(spec.units, activation=activation, use_bias=spec.use_bias, dtype=dtype,
                                   kernel_initializer=_zeros, bias_initializer=_zeros, name=f"dense_{i}")
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


# The compiled loop ``TFModel.train`` runs (a module attribute, so that a test can plant a defect in it).
_compiled_loop = keras_tf_loop.compiled_loop


def _model(plan: TrainingPlan) -> keras_tf_loop.TFModel:
    """The worker's model for the plan (``keras_model.model_for``); under ``workers.inline()`` a new one
    each time, never kept: a test may have monkeypatched Keras or a builder in this process."""
    from harness.run.adapters.workers import inline_active

    return model_for(keras_tf_loop.TFModel, plan, keep=not inline_active())


class KerasAdapter:
    name: str = "keras"
    conventions: tuple[str, ...] = ("keras",)
    optimizer_module: str = "keras.optimizers"
    narrowing_rule: str | None = None  # it returns no 32-bit results from 64-bit inputs
    subnormals: str | None = FLUSHED
    ties: str | None = None  # tf.clip_by_value passes the gradient at the bounds

    def available(self) -> str | None:
        return missing("tensorflow", "keras")

    def native_convention(self, spec: OptimizerSpec) -> str:
        return native(spec, "keras")

    def run(self, plan: TrainingPlan) -> Trajectory:
        return run_model(_model(plan), plan, framework=self.name)

    def trace_step(self, plan: TrainingPlan, step: int) -> Params:
        m = _model(plan)
        with m.settings():
            return m.trace_step(plan, step)

    def forward(self, scenario: Scenario, params: Params, X: np.ndarray) -> list[np.ndarray]:
        m = _model(forward_plan(scenario, params, X))
        with m.settings():
            return m.outputs(X)

    def loss(self, scenario: Scenario, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        tf, keras = import_keras()
        training = scenario.training_spec
        with floatx(keras, y_pred.dtype.name):
            return np.asarray(build_loss(keras, training.loss, training.clip)(tf.constant(y_true),
                                                                               tf.constant(y_pred)))

    def gradients(self, scenario: Scenario, params: Params, X: np.ndarray,
                  y: np.ndarray) -> tuple[np.ndarray, Params]:
        """One ``tf.GradientTape`` over the model and the loss the training loop uses."""
        tf, _ = import_keras()
        assert scenario.training is not None, "gradients need a training loss"
        m = _model(forward_plan(scenario, params, X, y))
        with m.settings():
            loss, grads = m.loss_and_grads(tf.constant(X), tf.constant(y))
        return np.asarray(loss), {n: np.asarray(g) for n, g in zip(m.names, grads)}

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
