"""The compute kinds: what each ``[[answer]]`` asks, its inputs, and their validation.

Every kind parses its fields from the answer's table (one-line ``BadInput`` naming the
answer and field on any problem) into a frozen question that ``compute`` evaluates.

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

Parameters are named as the labs name them: ``w`` and ``b`` for a one-layer model,
``w1, b1, w2, b2, ...`` for deeper ones (``layers.<i>.kernel|bias`` is accepted too).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from harness.answers.labels import param_labels
from harness.errors import MISSING, BadInput
from harness.run.runner import with_convention
from harness.spec.catalogue import resolve
from harness.spec.conventions import difference, native, pinned
from harness.spec.data import make_data, target_columns
from harness.spec.fields import Table
from harness.spec.scenario import (
    DTYPES,
    LayerSpec,
    OptimizerSpec,
    Scenario,
    check_step,
    layer_axis,
    parse_optimizer,
)
from reference.activations import ACTIVATIONS
from reference.losses import CLIP_MODES, LOSSES
from reference.optimizers import CONVENTIONS

NETWORK_OUTPUTS = ("output", "prediction", "accuracy")
SCENARIO_QUANTITIES = ("params", "gradient", "loss", "output", "accuracy", "history")
HISTORY_KEYS = ("loss",)  # what a printed training log (Keras' hist.history) may hold: the epochs' training loss
PIN_CONVENTION = "convention = " + " or ".join(f'"{c}"' for c in CONVENTIONS)
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


# --- field readers --------------------------------------------------------------

def _activation_name(t: Table, key: str, default: str | None = None) -> str:
    if default is None:
        return t.string(key, choices=tuple(ACTIVATIONS))
    return t.string(key, default, choices=tuple(ACTIVATIONS))


def _layer(t: Table, n_in: int, *, kernel_key: str = "w", bias_key: str = "b") -> LayerSpec:
    w = t.array(kernel_key, ndim=2)
    if w.shape[0] != n_in:
        raise t.error(kernel_key, f"{n_in} rows (one per input of this layer) so that the product is defined",
                      f"shape {w.shape}")
    units = w.shape[1]
    b = t.array(bias_key, None)
    if b is not None and b.size != units:
        raise t.error(bias_key, f"{units} numbers (one per unit of the layer)", f"shape {b.shape}")
    activation = _activation_name(t, "activation", "linear")
    return LayerSpec(units=units, activation=activation, use_bias=b is not None, axis=layer_axis(t),
                     kernel=w, bias=None if b is None else b.reshape(units))


def _layers(t: Table, n_in: int) -> tuple[LayerSpec, ...]:
    if t.has("layers"):
        if t.has("w"):
            raise t.error("w", "either layers = [...] or one layer's w, b, activation, not both", "both")
        layers = []
        for lt in t.tables("layers"):
            lt.check_keys({"w", "b", "activation", "axis"})
            layers.append(_layer(lt, n_in))
            n_in = layers[-1].units
        if not layers:
            raise t.error("layers", "at least one layer { w = ..., b = ..., activation = ... }", "none")
        return tuple(layers)
    return (_layer(t, n_in),)


def _targets(t: Table, key: str, rows: int, units: int) -> np.ndarray:
    y = t.array(key)
    if y.ndim == 1:
        y = y.reshape(-1, 1) if units == 1 else y.reshape(1, -1)
    if y.shape != (rows, units):
        raise t.error(key, f"shape ({rows}, {units}) (one row per observation, one column per output)",
                      f"shape {y.shape}")
    return y


def _data(t: Table) -> np.ndarray:
    return t.array("X", ndim=2)


# --- kinds ------------------------------------------------------------------------

def _dense(t: Table, key_dir: Path) -> DenseQuestion:  # noqa: ARG001 - COMPUTE_KINDS' parser signature
    X = _data(t)
    w = t.array("w", ndim=2)
    if w.shape[0] != X.shape[1]:
        raise t.error("w", f"{X.shape[1]} rows so that X @ w is defined (X has shape {X.shape})",
                      f"shape {w.shape}")
    b = t.array("b", None)
    if b is not None:
        try:
            np.broadcast_shapes(b.shape, (X.shape[0], w.shape[1]))
        except ValueError:
            raise t.error("b", f"a shape that adds to X @ w, of shape {(X.shape[0], w.shape[1])}",
                          f"shape {b.shape}") from None
    return DenseQuestion(X=X, w=w, b=b, activation=_activation_name(t, "activation", "linear"), axis=layer_axis(t),
                 integers=_integers(t, "X", "w", "b"))


def _activation(t: Table, key_dir: Path) -> ActivationQuestion:  # noqa: ARG001 - COMPUTE_KINDS' parser signature
    z = t.array("z")
    if z.ndim not in (1, 2):
        raise t.error("z", "a vector or a matrix", f"shape {z.shape}")
    axis = t.integer("axis", -1)
    if not -z.ndim <= axis < z.ndim:
        raise t.error("axis", f"an axis of z (shape {z.shape})", axis)
    return ActivationQuestion(function=_activation_name(t, "function"), z=z, axis=axis, integers=_integers(t, "z"))


def _network(t: Table, key_dir: Path) -> NetworkQuestion:  # noqa: ARG001 - COMPUTE_KINDS' parser signature
    X = _data(t)
    layers = _layers(t, X.shape[1])
    output = t.string("output", "output", choices=NETWORK_OUTPUTS)
    y = _targets(t, "y", X.shape[0], layers[-1].units) if output == "accuracy" or t.has("y") else None
    if t.has("layers"):
        integers = _integers(t, "X") and all(_integers(lt, "w", "b") for lt in t.tables("layers"))
    else:
        integers = _integers(t, "X", "w", "b")
    return NetworkQuestion(X=X, layers=layers, output=output, y=y, integers=integers)


def _loss(t: Table, key_dir: Path) -> LossQuestion:  # noqa: ARG001 - COMPUTE_KINDS' parser signature
    y_pred = t.array("y_pred")
    y_true = t.array("y_true")
    if y_true.shape != y_pred.shape:
        raise t.error("y_true", f"the shape of y_pred {y_pred.shape}", f"shape {y_true.shape}")
    return LossQuestion(loss=t.string("loss", choices=tuple(LOSSES)), y_true=y_true, y_pred=y_pred,
                clip=t.string("clip", "none", choices=CLIP_MODES))


def _gradient(t: Table, key_dir: Path) -> GradientQuestion:  # noqa: ARG001 - COMPUTE_KINDS' parser signature
    X = _data(t)
    layers = _layers(t, X.shape[1])
    return GradientQuestion(X=X, y=_targets(t, "y", X.shape[0], layers[-1].units), layers=layers,
                    loss=t.string("loss", choices=tuple(LOSSES)), clip=t.string("clip", "none", choices=CLIP_MODES))


def _train(t: Table, key_dir: Path) -> TrainQuestion:
    g = _gradient(t, key_dir)
    opt = t.sub("optimizer")
    spec = parse_optimizer(opt)
    if difference(spec) is not None and pinned(spec) is None:
        raise opt.error("convention", f"{PIN_CONVENTION}: the answer depends on it ({difference(spec)})", MISSING)
    raw_batch = t.data.get("batch_size", "full")
    batch_size = None if raw_batch == "full" else t.integer("batch_size", minimum=1)
    return TrainQuestion(X=g.X, y=g.y, layers=g.layers, loss=g.loss, clip=g.clip, optimizer=spec,
                 batch_size=batch_size, steps=t.integer("steps", minimum=1))


def _scenario(t: Table, key_dir: Path) -> ScenarioQuestion:
    name = t.string("scenario")
    relative = key_dir / name
    target = str(relative) if name.endswith(".toml") and relative.exists() else name
    try:
        scenario = resolve(target)
    except BadInput as exc:
        raise t.error("scenario", f"a catalogue scenario or scenario file that loads ({exc.one_line()})",
                      name) from None
    quantity = t.string("quantity", choices=SCENARIO_QUANTITIES)
    if not scenario.trains and quantity not in ("output", "accuracy"):
        raise t.error("quantity", f"\"output\" or \"accuracy\" (scenario {scenario.name} is forward-only: no "
                      "parameters, gradients or losses)", quantity)
    if quantity == "accuracy" and target_columns(scenario.data) == 0:
        raise t.error("quantity", f"a quantity other than \"accuracy\" (scenario {scenario.name} has no targets y)",
                      quantity)
    if quantity == "history":
        return _history(t, scenario)
    for key in ("every", "first"):
        if t.has(key):
            raise t.error(key, f"no {key} (it chooses the epochs of quantity = \"history\")", t.data[key])
    total = scenario.max_steps
    on_outputs = quantity in ("output", "accuracy")  # the outputs before a step: step == total is the final one
    step = check_step(t, "step", last=total if on_outputs else total - 1,
                      what=f"scenario {scenario.name} makes {total} steps unless it stops early"
                           + (f"; step {total} is the final output" if on_outputs else ""))
    dtype = t.string("dtype", "float64", choices=DTYPES)
    convention = _convention(t, scenario, quantity, step)
    if convention is not None:
        scenario = with_convention(scenario, convention)
    return ScenarioQuestion(scenario=scenario, quantity=quantity, step=step, dtype=dtype, convention=convention)


def _history(t: Table, scenario: Scenario) -> ScenarioQuestion:
    """A printed training log: entries at epochs first, first + every, ... (``history_epochs``)."""
    if t.has("step"):
        raise t.error("step", "no step: a history has one entry per epoch (every = k, first = j choose them)",
                      t.data["step"])
    epochs = scenario.training_spec.epochs
    every = t.integer("every", 1, minimum=1)
    first = t.integer("first", 0, minimum=0)
    if first >= epochs:
        raise t.error("first", f"a 0-based epoch below {epochs} (scenario {scenario.name} trains {epochs} epochs)",
                      first)
    dtype = t.string("dtype", "float64", choices=DTYPES)
    convention = _convention(t, scenario, "history", "final")
    if convention is not None:
        scenario = with_convention(scenario, convention)
    return ScenarioQuestion(scenario=scenario, quantity="history", step="final", dtype=dtype, convention=convention,
                            every=every, first=first)


def _convention(t: Table, scenario: Scenario, quantity: str, step: int | str) -> str | None:
    """The optimizer convention the answer pins (``convention``), required when the answer depends on it:
    the conventions' arithmetic differs (``difference``), the scenario pins none, and the value is one the
    optimizer has touched (parameters, or anything after step 0). It may differ from the scenario's own pin
    only where the two compute the same arithmetic (``native``)."""
    spec = None if scenario.training is None else scenario.training.optimizer
    if not t.has("convention"):
        if spec is not None and difference(spec) is not None and pinned(spec) is None and (
                quantity == "params" or step != 0):
            raise t.error("convention", f"{PIN_CONVENTION}: scenario {scenario.name}'s answer depends on it "
                                        f"({difference(spec)})", MISSING)
        return None
    convention = t.string("convention", choices=CONVENTIONS)
    if spec is None:
        raise t.error("convention", f"no convention (scenario {scenario.name} is forward-only: no optimizer)",
                      convention)
    own = pinned(spec)
    if own is not None and native(spec, own) != native(spec, convention):
        raise t.error("convention", f"the scenario's own convention {own!r} (scenario {scenario.name} pins it in "
                                    "training.optimizer.convention)", convention)
    return convention


def _integers(t: Table, *keys: str) -> bool:
    """Every number of these fields (those present) is written as a TOML integer."""
    def whole(value: object) -> bool:
        if isinstance(value, list):
            return all(whole(v) for v in value)
        return isinstance(value, int) and not isinstance(value, bool)

    return all(whole(t.data[key]) for key in keys if t.has(key))


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


COMPUTE_KINDS: dict[str, tuple[Callable[[Table, Path], Question], set[str]]] = {
    "dense": (_dense, {"X", "w", "b", "activation", "axis"}),
    "activation": (_activation, {"function", "z", "axis"}),
    "network": (_network, {"X", "layers", "w", "b", "activation", "axis", "output", "y"}),
    "loss": (_loss, {"loss", "y_true", "y_pred", "clip"}),
    "gradient": (_gradient, {"X", "y", "layers", "w", "b", "activation", "axis", "loss", "clip"}),
    "train": (_train, {"X", "y", "layers", "w", "b", "activation", "axis", "loss", "clip", "optimizer",
                       "batch_size", "steps"}),
    "scenario": (_scenario, {"scenario", "quantity", "step", "convention", "dtype", "every", "first"}),
}


def parse_question(kind: str, t: Table, *, key_dir: Path) -> Question:
    parse, _ = COMPUTE_KINDS[kind]
    return parse(t, key_dir)


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
