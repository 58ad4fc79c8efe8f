"""A hand-written NumPy training loop: the baseline ``nn-parity bench`` times the reference against.

It computes what the reference computes for a network of dense layers trained by plain SGD,
operation for operation (so its final parameters are the reference's: ``tests/test_bench.py``),
written as one plain loop over steps: forward pass, the batch-mean loss (kept each step),
backpropagation, ``w = w - learning_rate * g``; no layer objects, caches or per-step recording.
It is defined for the reference's activations, the ``mse``, ``binary_crossentropy`` and
``categorical_crossentropy`` losses without a log guard (``clip = "none"``) and SGD without momentum;
``not_defined`` says why not for any other scenario.
"""
from __future__ import annotations

import numpy as np

from harness.run.plan import TrainingPlan
from harness.spec.scenario import Scenario
from reference.network import bias_name, kernel_name

LOSSES = ("mse", "binary_crossentropy", "categorical_crossentropy")


def not_defined(scenario: Scenario) -> str | None:
    """Why the hand loop is not defined for ``scenario`` (None when it is)."""
    training = scenario.training
    if training is None:
        return "a forward-only scenario has no training loop"
    spec = training.optimizer
    if spec.name != "sgd" or spec.options.get("momentum", 0) != 0:
        return f"the hand loop is plain SGD; the scenario trains with {spec.name} {dict(spec.options)}"
    if training.loss not in LOSSES:
        return f"the hand loop computes {', '.join(LOSSES)}; the scenario's loss is {training.loss}"
    if training.clip != "none":
        return f"the hand loop takes log(p) unguarded; the scenario clips as {training.clip}"
    return None


def hand_loop(plan: TrainingPlan) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Train ``plan`` by hand: the loss of every step made, and the final parameters."""
    training = plan.scenario.training
    assert training is not None and not_defined(plan.scenario) is None, not_defined(plan.scenario)
    layers = plan.scenario.layers
    dtype = plan.X.dtype.type
    lr = dtype(training.optimizer.learning_rate)
    kernels = [plan.initial_params[kernel_name(i)].copy() for i in range(len(layers))]
    biases = [plan.initial_params[bias_name(i)].copy() if layer.use_bias else None for i, layer in enumerate(layers)]
    losses = np.empty(plan.max_steps, dtype=dtype)
    previous = np.inf
    steps, full = 0, plan.is_full_batch_in_order
    with np.errstate(all="ignore"):
        for step in range(plan.max_steps):
            x, y = plan.batch(step, full=full)

            # forward: z = a @ W + b, a = activation(z); keep each layer's input, z and a
            inputs, zs, outputs = [], [], []
            a = x
            for layer, W, b in zip(layers, kernels, biases):
                inputs.append(a)
                z = a @ W
                if b is not None:
                    z = z + b
                if layer.activation == "sigmoid":
                    a = 1 / (1 + np.exp(-z))
                elif layer.activation == "tanh":
                    a = np.tanh(z)
                elif layer.activation == "relu":
                    a = np.maximum(z, 0)
                elif layer.activation == "exponential":
                    a = np.exp(z)
                elif layer.activation == "softmax":
                    e = np.exp(z - np.max(z, axis=layer.axis, keepdims=True))
                    a = e / np.sum(e, axis=layer.axis, keepdims=True)
                else:  # linear
                    a = z
                zs.append(z)
                outputs.append(a)

            # the batch-mean loss and its gradient with respect to the prediction
            p, n = a, dtype(a.size)
            if training.loss == "mse":
                diff = p - y
                loss = np.mean(diff ** 2)
                grad = 2 * diff / n
            elif training.loss == "binary_crossentropy":
                loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
                grad = -(y * (1 / p) - (1 - y) * (1 / (1 - p))) / n
            else:  # categorical_crossentropy
                loss = -np.mean(np.sum(y * np.log(p), axis=-1))
                grad = -y * (1 / p) / dtype(p.size // p.shape[-1])
            if training.early_stop_tol is not None and abs(loss - previous) < training.early_stop_tol:
                break
            previous = losses[step] = loss
            steps += 1

            # backpropagation and the SGD step, from the output layer down
            for i in reversed(range(len(layers))):
                z, a, axis = zs[i], outputs[i], layers[i].axis
                activation = layers[i].activation
                if activation == "sigmoid":
                    delta = grad * a * (1 - a)
                elif activation == "tanh":
                    delta = grad * (1 - a * a)
                elif activation == "relu":
                    delta = grad * (z > 0).astype(dtype)
                elif activation == "exponential":
                    delta = grad * a
                elif activation == "softmax":
                    delta = a * (grad - np.sum(grad * a, axis=axis, keepdims=True))
                else:  # linear
                    delta = grad
                if i > 0:
                    grad = delta @ kernels[i].T
                kernels[i] -= lr * (inputs[i].T @ delta)
                if biases[i] is not None:
                    biases[i] -= lr * np.sum(delta, axis=0)
    params = {kernel_name(i): W for i, W in enumerate(kernels)}
    params.update({bias_name(i): b for i, b in enumerate(biases) if b is not None})
    return losses[:steps], params
