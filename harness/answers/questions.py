"""The compute kinds as questions: what each ``[[answer]]`` asks, its inputs by name, its parts and
their shapes.

Every kind is a frozen question (``DenseQuestion`` ... ``ScenarioQuestion``), read from the
answer's table by ``harness.answers.question_fields`` and evaluated by ``harness.answers.compute``.

=============  ==========================================================================
kind           inputs -> answer
=============  ==========================================================================
dense          X, w, b (optional), activation -> a = activation(X @ w + b)
activation     function, z, axis (-1) -> function(z)
network        X, layers = [{w, b, activation}], output = output|prediction|accuracy (y)
loss           loss, y_true, y_pred, clip -> the batch-mean loss
gradient       X, y, layers (or w, b, activation), loss, clip -> dL/d(every parameter)
train          the same plus optimizer, batch_size, steps -> parameters after the steps
scenario       scenario (catalogue name or file), quantity, step, convention, dtype -> a value
               of its run in that optimizer convention and dtype (float64 by default);
               quantity = "history" (every, first): the training log, one loss per epoch
=============  ==========================================================================

A ``history`` answer is a printed training log, Keras' ``hist.history`` (``{'loss': [...]}``) or a
loss curve: entry ``i`` is epoch ``first + i * every`` (0-based, as ``hist.history['loss'][first::every]``
lists them); an epoch's loss is the mean of its batches' losses weighted by their rows, as Keras'
``loss`` tracker computes it (the full-batch loss before the epoch's update, in full-batch training).

``integer_answer`` says when numpy itself would hold the answer as integers (the lab's
``X @ w + b`` on integer arrays, a predicted class), so that it is printed as integers.

Parameters are named as the labs name them (``harness.answers.labels``): ``w`` and ``b`` for a
one-layer model, ``w1, b1, w2, b2, ...`` for deeper ones (``layers.<i>.kernel|bias`` is accepted too).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from harness.answers.labels import param_labels
from harness.spec.data import make_data
from harness.spec.scenario import LayerSpec, OptimizerSpec, Scenario

HISTORY_KEYS = ("loss",)  # what a printed training log (Keras' hist.history) may hold: the epochs' training loss
INTEGER_ACTIVATIONS = ("linear", "relu")  # keep numpy's integer arrays integer (np.maximum(0, z))


@dataclass(frozen=True)
class DenseQuestion:
    X: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    activation: str
    axis: int
    integers: bool = False  # X, w and b are integers in the key (numpy would hold them as int arrays)

    @property
    def bias_per_row(self) -> bool:
        """The lab's b is n x q (one bias per observation); a scalar, a vector or one row is per unit."""
        return self.b is not None and self.b.ndim == 2 and self.b.shape[0] != 1

    def unit_bias(self) -> np.ndarray:
        """A per-unit bias as the layer's ``(q,)`` vector (a scalar is broadcast)."""
        assert self.b is not None, "only a dense answer with a bias has a per-unit bias"
        return np.broadcast_to(self.b.reshape(-1), (self.w.shape[1],)).copy()


@dataclass(frozen=True)
class ActivationQuestion:
    function: str
    z: np.ndarray
    axis: int
    integers: bool = False


@dataclass(frozen=True)
class NetworkQuestion:
    X: np.ndarray
    layers: tuple[LayerSpec, ...]
    output: str
    y: np.ndarray | None
    integers: bool = False


@dataclass(frozen=True)
class LossQuestion:
    loss: str
    y_true: np.ndarray
    y_pred: np.ndarray
    clip: str


@dataclass(frozen=True)
class GradientQuestion:
    X: np.ndarray
    y: np.ndarray
    layers: tuple[LayerSpec, ...]
    loss: str
    clip: str


@dataclass(frozen=True)
class TrainQuestion:
    X: np.ndarray
    y: np.ndarray
    layers: tuple[LayerSpec, ...]
    loss: str
    clip: str
    optimizer: OptimizerSpec
    batch_size: int | None
    steps: int


@dataclass(frozen=True)
class ScenarioQuestion:
    scenario: Scenario  # with its optimizer pinned to ``convention`` when the answer sets one
    quantity: str
    step: int | str
    dtype: str = "float64"
    convention: str | None = None
    every: int = 1  # history: entry i is epoch first + i * every
    first: int = 0
    entries: int | None = None  # history: how many entries the key printed (None: every one there is)


Question = (DenseQuestion | ActivationQuestion | NetworkQuestion | LossQuestion | GradientQuestion | TrainQuestion
            | ScenarioQuestion)


def parts(question: Question) -> tuple[str, ...]:
    """The names of the answer's parts: ``("value",)`` or the parameter labels."""
    if isinstance(question, (GradientQuestion, TrainQuestion)):
        return tuple(param_labels(question.layers))
    if isinstance(question, ScenarioQuestion) and question.quantity in ("params", "gradient"):
        layers = question.scenario.layers
        return tuple(param_labels(layers))
    if isinstance(question, ScenarioQuestion) and question.quantity == "history":
        return HISTORY_KEYS
    return ("value",)


def history_epochs(question: ScenarioQuestion) -> range:
    """The 0-based epochs of a history answer's entries: first, first + every, ... (as many as printed)."""
    epochs = question.scenario.training_spec.epochs
    every = range(question.first, epochs, question.every)
    return every if question.entries is None else every[:question.entries]


def entry_names(question: Question) -> tuple[str, ...]:
    """What each element of the answer is called in a message, when an index alone would not say it:
    a history's entries by epoch, as Keras prints them (``epoch 31/100``)."""
    if isinstance(question, ScenarioQuestion) and question.quantity == "history":
        epochs = question.scenario.training_spec.epochs
        return tuple(f"epoch {e + 1}/{epochs}" for e in history_epochs(question))
    return ()


def reference_name(question: NetworkQuestion | GradientQuestion | TrainQuestion | ScenarioQuestion, label: str) -> str:
    layers = question.scenario.layers if isinstance(question, ScenarioQuestion) else question.layers
    return param_labels(layers)[label]


# --- the inputs, by the names ``inputs_rounded_to`` gives them ---------------------

def input_names(question: Question) -> list[str]:
    """The inputs an ``inputs_rounded_to`` table may name."""
    return list(input_values(question))


def input_values(question: Question) -> dict[str, np.ndarray]:
    """Each input of the answer by name: the kind's arrays, the parameters by label, the targets
    (none for a scenario answer: its inputs are the scenario's own)."""
    if isinstance(question, ScenarioQuestion):
        return {}
    if isinstance(question, DenseQuestion):
        values = {"X": question.X, "w": question.w}
        return values | ({"b": question.b} if question.b is not None else {})
    if isinstance(question, ActivationQuestion):
        return {"z": question.z}
    if isinstance(question, LossQuestion):
        return {"y_true": question.y_true, "y_pred": question.y_pred}
    values = {"X": question.X}
    for label, name in param_labels(question.layers).items():
        layer = question.layers[int(name.split(".")[1])]
        param = layer.kernel if name.endswith("kernel") else layer.bias
        if param is not None:  # a key's layers always carry their values
            values[label] = param
    if isinstance(question, (GradientQuestion, TrainQuestion)):
        values["y"] = question.y
    return values


def with_inputs(question: DenseQuestion | ActivationQuestion | NetworkQuestion | LossQuestion | GradientQuestion
                | TrainQuestion, values: dict[str, np.ndarray]) -> Question:
    """The same question on other values of some of its inputs (named as ``input_values`` names them)."""
    if isinstance(question, DenseQuestion):
        return replace(question, X=values.get("X", question.X), w=values.get("w", question.w),
                       b=values.get("b", question.b))
    if isinstance(question, ActivationQuestion):
        return replace(question, z=values.get("z", question.z))
    if isinstance(question, LossQuestion):
        return replace(question, y_true=values.get("y_true", question.y_true),
                       y_pred=values.get("y_pred", question.y_pred))
    layers = list(question.layers)
    for label, name in param_labels(layers).items():
        if label in values:
            i = int(name.split(".")[1])
            layers[i] = replace(layers[i], kernel=values[label]) if name.endswith("kernel") \
                else replace(layers[i], bias=values[label])
    X = values.get("X", question.X)
    if isinstance(question, NetworkQuestion):
        return replace(question, X=X, layers=tuple(layers))
    return replace(question, X=X, y=values.get("y", question.y), layers=tuple(layers))


# --- what the answer is ----------------------------------------------------------

def integer_answer(question: Question) -> bool:
    """numpy would hold this answer as integers: a predicted class (``argmax``), or integer inputs through
    integer-preserving arithmetic (``X @ w + b``, ReLU) on int arrays."""
    if isinstance(question, NetworkQuestion) and question.output == "prediction":
        return True
    if isinstance(question, DenseQuestion):
        return question.integers and question.activation in INTEGER_ACTIVATIONS
    if isinstance(question, ActivationQuestion):
        return question.integers and question.function in INTEGER_ACTIVATIONS
    if isinstance(question, NetworkQuestion) and question.output == "output":
        return question.integers and all(layer.activation in INTEGER_ACTIVATIONS for layer in question.layers)
    return False


def answer_dtype(question: Question) -> str:
    """The dtype the answer is computed in: a scenario answer's ``dtype``, else float64."""
    return question.dtype if isinstance(question, ScenarioQuestion) else "float64"


def epochs_for(question: TrainQuestion) -> int:
    """Enough epochs (batches in the data's order, the last partial batch kept) to make ``steps`` updates."""
    n = question.X.shape[0]
    size = n if question.batch_size is None else min(question.batch_size, n)
    return math.ceil(question.steps / math.ceil(n / size))


def part_shape(question: Question, part: str) -> tuple[int, ...]:
    """The shape of the computed answer (or of one parameter), known before computing."""
    if isinstance(question, DenseQuestion):
        return (question.X.shape[0], question.w.shape[1])
    if isinstance(question, ActivationQuestion):
        return question.z.shape
    if isinstance(question, NetworkQuestion):
        n = question.X.shape[0]
        return {"output": (n, question.layers[-1].units), "prediction": (n,), "accuracy": ()}[question.output]
    if isinstance(question, LossQuestion):
        return ()
    if isinstance(question, (GradientQuestion, TrainQuestion)):
        return _param_shape(question.layers, reference_name(question, part), question.X.shape[1])
    sc = question.scenario
    if question.quantity in ("params", "gradient"):
        return sc.param_shapes()[reference_name(question, part)]
    if question.quantity == "output":
        return (make_data(sc.data)[0].shape[0], sc.layers[-1].units)
    if question.quantity == "history":
        return (len(history_epochs(question)),)
    return ()


def _param_shape(layers: tuple[LayerSpec, ...], name: str, input_dim: int) -> tuple[int, ...]:
    i = int(name.split(".")[1])
    n_in = input_dim if i == 0 else layers[i - 1].units
    return (n_in, layers[i].units) if name.endswith("kernel") else (layers[i].units,)
