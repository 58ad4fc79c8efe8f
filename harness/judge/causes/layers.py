"""Measured causes in what a side's layers computed: another activation than the declared one
(``activation_applied``), the kernel read in another layout than it holds (``kernel_layout``), an
activation's derivative taken at the wrong point or in a wrong form (``activation_derivative``:
the gradients reproduced by the reference's backpropagation with one known slip), and a
cross-entropy guarded otherwise than declared (``clip_applied``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from harness.judge.causes.evidence import CROSS_ENTROPIES, Evidence, Finding, agree
from reference.activations import ACTIVATIONS
from reference.losses import CLIP_MODES, get_loss
from reference.network import bias_name, kernel_name


def _first_differing_output(e: Evidence) -> int | None:
    """The first layer whose output stage is beyond the tolerance between the two sides (None when
    none is, or when a side's trace lacks an output stage before it)."""
    ta, tb = e.traces.get(e.a), e.traces.get(e.b)
    for i in range(len(e.scenarios[e.a].layers)):
        stage = f"output layers.{i}"
        if ta is None or tb is None or stage not in ta or stage not in tb:
            return None
        if not agree(ta[stage], tb[stage], e.tolerance):
            return i
    return None


def _layer_input(e: Evidence, trace: dict[str, np.ndarray], i: int) -> np.ndarray:
    """What layer ``i`` took in at the evidence's step, as the side's trace holds it."""
    return e.plan.X[e.plan.batch_indices(e.step)] if i == 0 else trace[f"output layers.{i - 1}"]


def _finite_step(trace: dict[str, np.ndarray], i: int) -> bool:
    """Layer ``i``'s output, parameters and input in the side's trace are finite numbers."""
    names = [f"output layers.{i}", f"params {kernel_name(i)}", f"params {bias_name(i)}"] + (
        [f"output layers.{i - 1}"] if i else [])
    return all(bool(np.isfinite(np.asarray(trace[n], dtype=np.float64)).all()) for n in names if n in trace)


def activation_applied(e: Evidence) -> Finding | None:
    """A layer whose output, at the first output stage beyond the tolerance, is another activation
    of the side's own inputs and parameters than the declared one."""
    i = _first_differing_output(e)
    if i is None:
        return None
    layer, stage = e.scenarios[e.a].layers[i], f"output layers.{i}"
    for side, _ in e.sides:
        trace = e.traces[side]
        if not _finite_step(trace, i):
            continue  # nan matches nan: no measurement of what the layer applied
        with np.errstate(all="ignore"):  # a diverged run's outputs may overflow here: no warning
            z = _layer_input(e, trace, i) @ trace[f"params {kernel_name(i)}"]
            if f"params {bias_name(i)}" in trace:
                z = z + trace[f"params {bias_name(i)}"]
            applied = [name for name, act in ACTIVATIONS.items()
                       if agree(act.forward(z, axis=layer.axis) if act.takes_axis else act.forward(z),
                                 trace[stage], e.tolerance)]
        declared = e.scenarios[side].layers[i].activation  # the side's own scenario (a variant may differ)
        if applied and declared not in applied:
            return Finding("activation applied", side,
                           f"{side}'s layers.{i} applied {' / '.join(applied)} where {declared} is "
                           f"declared: its output at step {e.step} is {applied[0]}(x W + b) of its own input "
                           "and parameters")
    return None


def _layouts(kernel: np.ndarray) -> dict[str, np.ndarray]:
    """The kernel in the other layouts a slip reads it in (each different from the kernel)."""
    out = {"its transpose read in row-major order (a reshape where a transpose was meant)":
           np.ascontiguousarray(kernel.T).reshape(kernel.shape)}
    if kernel.shape[0] == kernel.shape[1]:
        out["transposed"] = kernel.T
    return {how: k for how, k in out.items() if not np.array_equal(k, kernel)}


def kernel_layout(e: Evidence) -> Finding | None:
    """A layer whose output, at the first output stage beyond the tolerance, is its declared
    activation of its own input times its own kernel read in another layout (``_layouts``), while
    the parameters it holds are the kernel as laid out."""
    i = _first_differing_output(e)
    if i is None:
        return None
    layer, stage = e.scenarios[e.a].layers[i], f"output layers.{i}"
    for side, _ in e.sides:
        trace = e.traces[side]
        x = _layer_input(e, trace, i)
        act = ACTIVATIONS[e.scenarios[side].layers[i].activation]
        bias = trace.get(f"params {bias_name(i)}")
        if not _finite_step(trace, i):
            continue  # nan matches nan: no measurement of the layout it read

        def output(kernel: np.ndarray) -> np.ndarray:
            z = x @ kernel if bias is None else x @ kernel + bias
            return act.forward(z, axis=layer.axis) if act.takes_axis else act.forward(z)
        kernel = trace[f"params {kernel_name(i)}"]
        with np.errstate(all="ignore"):
            if agree(output(kernel), trace[stage], e.tolerance):
                continue
            for how, read in _layouts(kernel).items():
                if agree(output(read), trace[stage], e.tolerance):
                    return Finding("kernel layout", side,
                                   f"{side}'s layers.{i} computed its output at step {e.step} with its kernel "
                                   f"{how}: its output is {act.name}(x K' + b) of its own input and parameters, "
                                   "while the kernel it holds is laid out as declared")
    return None


def clip_applied(e: Evidence) -> Finding | None:
    """A cross-entropy whose value, from the side's own output, is another guard's than the declared."""
    spec = e.scenarios[e.a].training
    if spec is None or spec.loss not in CROSS_ENTROPIES:
        return None
    last = f"output layers.{len(e.scenarios[e.a].layers) - 1}"
    y = e.plan.y[e.plan.batch_indices(e.step)]
    for side, _ in e.sides:
        trace, declared = e.traces.get(side), e.scenarios[side].training_spec.clip
        if trace is None or last not in trace:
            continue
        with np.errstate(all="ignore"):
            applied = [c for c in CLIP_MODES
                       if agree(get_loss(spec.loss).value(y, trace[last], clip=c), trace["loss"], e.tolerance)]
        if applied and declared not in applied:
            return Finding("clip applied", side,
                           f"{side}'s loss at step {e.step} is the {' / '.join(repr(c) for c in applied)} guard's "
                           f"of its own output, where clip {declared!r} is declared")
    return None


# Each element-wise activation's derivative as a function of its input z and output a (the
# reference's rules restated here, so that the check does not run the code it checks), and the
# derivatives a slip puts in its place, each named.
Derivative = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _logistic(x: np.ndarray) -> np.ndarray:
    one = np.asarray(1, dtype=x.dtype)
    return np.asarray(one / (one + np.exp(-x)))


DERIVATIVES: dict[str, tuple[str, Derivative]] = {
    "linear": ("1", lambda z, a: np.ones_like(z)),
    "sigmoid": ("a (1 - a)", lambda z, a: a * (1 - a)),
    "tanh": ("1 - a^2", lambda z, a: 1 - a * a),
    "relu": ("1 where z > 0, else 0", lambda z, a: (z > 0).astype(z.dtype)),
    "exponential": ("a", lambda z, a: a),
}


WRONG_DERIVATIVES: dict[str, dict[str, Derivative]] = {
    "tanh": {"1 - z^2 (the output's formula evaluated at the input z)": lambda z, a: 1 - z * z,
             "1 - tanh(a)^2 (the derivative evaluated at the output a = tanh(z))": lambda z, a: 1 - np.tanh(a) ** 2,
             "1 - a (the square dropped)": lambda z, a: 1 - a},
    "sigmoid": {"z (1 - z) (the output's formula evaluated at the input z)": lambda z, a: z * (1 - z),
                "sigmoid(a) (1 - sigmoid(a)) (the derivative evaluated at the output a = sigmoid(z))":
                    lambda z, a: _logistic(a) * (1 - _logistic(a)),
                "1 - a^2 (tanh's)": lambda z, a: 1 - a * a},
    "relu": {"1 at z = 0 (relu'(0) = 1)": lambda z, a: (z >= 0).astype(z.dtype)},
}


def _backpropagate(e: Evidence, side: str, swapped: tuple[int, Derivative] | None = None) -> dict[str, np.ndarray]:
    """The gradients of the step from the side's own trace (its parameters and layer outputs),
    by the reference's backpropagation with each element-wise activation's derivative from
    ``DERIVATIVES``, except layer ``swapped[0]``'s, which is ``swapped[1]`` (softmax: the
    reference's Jacobian product). The loss gradient is the reference's."""
    trace, scenario = e.traces[side], e.scenarios[side]
    spec, layers = scenario.training_spec, scenario.layers
    idx = e.plan.batch_indices(e.step)
    inputs = [e.plan.X[idx]] + [trace[f"output layers.{i}"] for i in range(len(layers) - 1)]
    y = e.plan.y[idx]
    grad_a = get_loss(spec.loss).gradient(y, trace[f"output layers.{len(layers) - 1}"], clip=spec.clip)
    grads: dict[str, np.ndarray] = {}
    for i in reversed(range(len(layers))):
        kernel, a = trace[f"params {kernel_name(i)}"], trace[f"output layers.{i}"]
        z = inputs[i] @ kernel
        if layers[i].use_bias:
            z = z + trace[f"params {bias_name(i)}"]
        name = layers[i].activation
        if swapped is not None and swapped[0] == i:
            delta = grad_a * swapped[1](z, a)
        elif name in DERIVATIVES:
            delta = grad_a * DERIVATIVES[name][1](z, a)
        else:
            delta = ACTIVATIONS[name].backward(z, a, grad_a, axis=layers[i].axis)
        grads[kernel_name(i)] = inputs[i].T @ delta
        if layers[i].use_bias:
            grads[bias_name(i)] = delta.sum(axis=0)
        grad_a = delta @ kernel.T
    return grads


def activation_derivative(e: Evidence) -> Finding | None:
    """A side whose gradients at the step, from its own parameters and layer outputs, are
    reproduced by the reference's backpropagation with one layer's activation derivative swapped
    for a known slip (``WRONG_DERIVATIVES``: evaluated at the wrong point, a square dropped, another
    activation's), and not with the right one."""
    for side, other in e.sides:
        trace, layers = e.traces.get(side), e.scenarios[side].layers
        if trace is None or e.scenarios[side].training is None or not all(
                f"gradient {p}" in trace for p in e.scenarios[side].param_names()):
            continue

        def reproduces(grads: dict[str, np.ndarray], label: str = side) -> bool:
            return all(agree(g, e.traces[label][f"gradient {p}"], e.tolerance) for p, g in grads.items())
        with np.errstate(all="ignore"):
            if reproduces(_backpropagate(e, side)):
                continue
            for i, layer in enumerate(layers):
                for slip, derivative in WRONG_DERIVATIVES.get(layer.activation, {}).items():
                    if not reproduces(_backpropagate(e, side, (i, derivative))):
                        continue
                    also = (f"; {other}'s are reproduced with the right one" if other in e.traces and
                            reproduces(_backpropagate(e, other), other) else "")
                    return Finding("activation derivative", side,
                                   f"{side}'s gradients at step {e.step} are the reference's backpropagation of its "
                                   f"own layer outputs with layers.{i}'s {layer.activation} derivative taken as "
                                   f"{slip}, not {DERIVATIVES[layer.activation][0]}{also}")
    return None
