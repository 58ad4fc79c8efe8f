"""Expected values that are impossible for their quantity, and degenerate computations.

Implausible (whatever the inputs): a sigmoid or softmax output (a probability) outside
[0, 1]; softmax rows that do not sum to 1; a tanh outside [-1, 1]; a negative ReLU or
exponential output; a negative loss; an accuracy outside [0, 1] (above 100%). Each bound
is widened by the printed half-unit, so ``1.`` for a probability is fine.

A printed nan is not implausible: a diverged run prints nan. It is judged by the one
comparison rule (``harness.spec.tolerance``), as a scenario's lab value is: it matches
only a computed nan, and is wrong against a number. No bound here is broken by a nan
(every comparison with nan is false).

Degenerate (a warning, the answer is still checked): a softmax over an axis of length 1,
which is identically 1 whatever its input.
"""
from __future__ import annotations

import numpy as np

from harness.answers.questions import (
    ActivationQuestion,
    DenseQuestion,
    LossQuestion,
    NetworkQuestion,
    Question,
    ScenarioQuestion,
)
from harness.spec.printed import Printed
from harness.spec.scenario import LayerSpec

_RANGES = {"sigmoid": (0.0, 1.0), "softmax": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, np.inf),
           "exponential": (0.0, np.inf)}


def output_activation(question: Question) -> tuple[str, int, tuple[int, ...]] | None:
    """(activation, axis, shape) of the quantity the answer prints, when it is an activation's output."""
    if isinstance(question, ActivationQuestion):
        return question.function, question.axis, question.z.shape
    if isinstance(question, DenseQuestion):
        return question.activation, question.axis, (question.X.shape[0], question.w.shape[1])
    if isinstance(question, NetworkQuestion) and question.output == "output":
        last = question.layers[-1]
        return last.activation, last.axis, (question.X.shape[0], last.units)
    if isinstance(question, ScenarioQuestion) and question.quantity == "output":
        last = question.scenario.layers[-1]
        return last.activation, last.axis, (0, last.units)
    return None


def is_accuracy(question: Question) -> bool:
    return (isinstance(question, NetworkQuestion) and question.output == "accuracy") or (
        isinstance(question, ScenarioQuestion) and question.quantity == "accuracy")


def is_loss(question: Question) -> bool:
    return isinstance(question, LossQuestion) or (
        isinstance(question, ScenarioQuestion) and question.quantity == "loss")


def implausible(question: Question, expected: dict[str, Printed]) -> str | None:
    """Why the expected value cannot be right, or None."""
    value = expected.get("value")
    if value is None:
        return None
    v, h = value.values, value.half_unit
    if is_accuracy(question) and np.any((v + h < 0) | (v - h > 1)):
        return f"an accuracy of {float(np.nanmax(v)) * 100:g}% is outside [0%, 100%]"
    if is_loss(question) and np.any(v + h < 0):
        return f"a loss of {float(np.nanmin(v)):g} is negative; every loss here is a mean of non-negative terms"
    act = output_activation(question)
    if act is None or act[0] not in _RANGES:
        return None
    name, axis, shape = act
    low, high = _RANGES[name]
    bad = (v + h < low) | (v - h > high)
    if np.any(bad):
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        return f"{name} output {v[index]:g} at {index} is outside [{low:g}, {high:g}]"
    if name == "softmax" and v.ndim:
        sums = np.sum(v, axis=axis)
        slack = np.sum(h, axis=axis) + 1e-12
        off = np.abs(sums - 1.0) > slack
        if np.any(off):
            i = int(np.argwhere(np.atleast_1d(off))[0][0])
            return f"softmax probabilities along axis {axis} sum to {float(np.atleast_1d(sums)[i]):g}, not 1"
    return None


def degenerate(question: Question) -> list[str]:
    act = output_activation(question)
    layers: tuple[LayerSpec, ...] = ()
    if isinstance(question, NetworkQuestion):
        layers = question.layers
    elif isinstance(question, ScenarioQuestion):
        layers = question.scenario.layers
    warnings = []
    if act is not None and act[0] == "softmax" and act[2] and act[2][act[1]] == 1:
        warnings.append(f"softmax over axis {act[1]} of length 1 (shape {act[2]}): always 1, whatever the input")
    for i, layer in enumerate(layers[:-1] if act is not None else layers):
        if layer.activation == "softmax" and layer.axis in (-1, 1) and layer.units == 1:
            warnings.append(f"layer {i + 1}: softmax over 1 unit is always 1, whatever the input")
    return warnings
