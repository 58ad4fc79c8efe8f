"""The scenario space the fuzzer draws from, as hypothesis strategies over the scenario format's
dict form: every example is built by the loader itself (``parse_scenario``), so it is always a
valid scenario file (``toml_text.to_toml`` writes it).

1 to ``MAX_LAYERS`` layers of 1 to ``MAX_UNITS`` units, every activation, with or without bias;
every loss with an output it is valid for (MSE: any activation; binary cross-entropy: sigmoid and
0/1 targets; categorical: softmax over >= 2 units and one-hot targets) and every clip; SGD
(momentum, Nesterov), Adam (betas, epsilon, AMSGrad) and RMSprop (rho, momentum, epsilon,
centered), each option left at its default or set, the convention pinned or not; learning rates
from 1e-3 to 3; full or mini-batches (a partial last batch included), in order or shuffled; 1 to
``MAX_ROWS`` rows, at most ``MAX_STEPS`` steps. Data and initial weights are short decimals
edited by the edge-value families (``families``). Beyond these: an early stop (``early_stop_tol``),
initial weights from an initializer instead of explicit arrays (zeros, ones, constant, normal,
uniform, glorot_uniform, seeded), a softmax over the rows (axis 0) or over one unit (an axis of
length 1: degenerate, counted as such by the oracle), and forward-only scenarios (no training).
``--space`` narrows each of these too (``Space``: ``early_stop_tol``, ``initializer``, ``axis``,
``forward_only``). A scenario degenerate by nature, a softmax over an axis of length 1 (one unit
under MSE, or the rows of a batch of one row), is drawn only one time in ``RARELY`` where it could
be (still drawn, so the oracle's recognition of it is exercised; not a tenth of the budget).
Every choice shrinks towards the simplest (fewer layers, units, rows and steps, MSE, linear, plain
SGD, full batch, explicit weights, no early stop, training, values 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from harness.errors import BadInput
from harness.fuzz import families as fam
from harness.run.runner import check_runnable
from harness.spec.scenario import Scenario, parse_scenario

MAX_LAYERS = 3
MAX_UNITS = 4
MAX_INPUTS = 3
MAX_ROWS = 8
MAX_STEPS = 50
ACTIVATIONS = ("linear", "sigmoid", "tanh", "relu", "exponential", "softmax")
LOSSES = ("mse", "binary_crossentropy", "categorical_crossentropy")
LEARNING_RATES = (0.01, 0.1, 0.001, 0.5, 1.0, 3.0)
CLIPS = ("none", "keras", "torch")
PINS = (None, "keras", "keras-unrounded", "torch")
EARLY_STOPS = (1e-4, 1e-2, 1e-8)
EXPLICIT = "explicit"  # initial weights as arrays in the file, not an initializer
AXES = (-1, 0)  # a softmax over its units, or over the rows
RARELY = 16  # a softmax over an axis of length 1: drawn one time in RARELY where it could be
INITIALIZERS: dict[str, dict[str, st.SearchStrategy[Any]]] = {  # name -> its options (a seed when it draws)
    "zeros": {}, "ones": {}, "constant": {"value": st.sampled_from([0.5, -1.0, 2.0])},
    "normal": {"mean": st.sampled_from([0.0, 1.0]), "stddev": st.sampled_from([1.0, 0.1, 3.0])},
    "uniform": {"minval": st.sampled_from([-1.0, 0.0]), "maxval": st.sampled_from([1.0, 2.0])},
    "glorot_uniform": {},
}
SEEDED = ("normal", "uniform", "glorot_uniform")
OPTIONS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "sgd": {"momentum": st.sampled_from([0.9, 0.5, 0.99])},
    "adam": {"beta_1": st.sampled_from([0.9, 0.5]), "beta_2": st.sampled_from([0.999, 0.9]),
             "epsilon": st.sampled_from([1e-7, 1e-8, 1e-4]), "amsgrad": st.booleans()},
    "rmsprop": {"rho": st.sampled_from([0.9, 0.99, 0.8]), "momentum": st.sampled_from([0.5, 0.9]),
                "epsilon": st.sampled_from([1e-7, 1e-8, 1e-3]), "centered": st.booleans()},
}
EXAMPLE_PATH = Path("fuzz-example.toml")  # what error messages of a drawn scenario name
NAME = "fuzz-example"


@dataclass(frozen=True)
class Example:
    """A drawn scenario: ``raw``, its dict form (what the loader reads), and the edge-value
    families that shaped its data and weights."""

    raw: dict[str, Any]
    families: tuple[str, ...]

    def scenario(self) -> Scenario:
        return parse_scenario(self.raw, path=EXAMPLE_PATH)


@dataclass(frozen=True)
class Space:
    """What the draw may choose, field by field in the scenario format's words (``--space FILE``:
    ``space_file``); the default is the whole space of the module docstring. Every tuple is the
    allowed values, in the order they shrink (the first is the simplest)."""

    families: tuple[str, ...] = fam.FAMILIES
    rows: tuple[int, ...] = tuple(range(1, MAX_ROWS + 1))
    input_dim: tuple[int, ...] = tuple(range(1, MAX_INPUTS + 1))
    layers: tuple[int, ...] = tuple(range(1, MAX_LAYERS + 1))  # how many layers
    units: tuple[int, ...] = tuple(range(1, MAX_UNITS + 1))
    activation: tuple[str, ...] = ACTIVATIONS
    use_bias: tuple[bool, ...] = (True, False)
    architecture: tuple[tuple[int, str], ...] | None = None  # a fixed network: (units, activation) per layer
    loss: tuple[str, ...] = LOSSES
    optimizer: tuple[str, ...] = tuple(OPTIONS)
    learning_rate: tuple[float, ...] = LEARNING_RATES
    options: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # an optimizer option -> its allowed values (always set)
    convention: tuple[str | None, ...] = PINS
    batch_size: tuple[str | int, ...] | None = None  # None: full or any size up to the rows
    shuffle: tuple[bool, ...] = (False, True)
    clip: tuple[str, ...] = CLIPS
    max_steps: int = MAX_STEPS
    early_stop_tol: tuple[float | None, ...] = (None, *EARLY_STOPS)  # None: no early stop
    initializer: tuple[str, ...] = (EXPLICIT, *INITIALIZERS)  # per layer: arrays, or an initializer's name
    axis: tuple[int, ...] = AXES  # a softmax layer's axis
    forward_only: tuple[bool, ...] = (False, True)  # True: no [training], the outputs compared


WHOLE = Space()


def _pick(values: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


def _now_and_then(draw: st.DrawFn, allowed: tuple[Any, ...], usual: Any, odds: int) -> Any:
    """``usual`` most of the time and one of the other ``allowed`` values one time in ``odds``; only
    ``allowed`` values (``usual`` never when it is not allowed, the others never when none is)."""
    others = tuple(v for v in allowed if v != usual)
    if not others:
        return usual
    if usual not in allowed or draw(st.integers(0, odds - 1)) == odds - 1:
        return draw(_pick(others))
    return usual


def _rarely(draw: st.DrawFn) -> bool:
    return bool(draw(st.integers(0, RARELY - 1)) == RARELY - 1)


def _output_units(draw: st.DrawFn, space: Space, low: int, high: int) -> int:
    allowed = tuple(u for u in space.units if low <= u <= high) or (max(low, min(space.units)),)
    return int(draw(_pick(allowed)))


def _output(draw: st.DrawFn, loss: str, space: Space) -> tuple[int, str]:
    """The last layer's units and activation, valid for ``loss``."""
    if loss == "mse":  # a softmax over one unit (an axis of length 1, degenerate) is drawn rarely
        activation = draw(_pick(space.activation))
        low = 1 if activation != "softmax" or _rarely(draw) else 2
        return _output_units(draw, space, low, 2), activation
    if loss == "binary_crossentropy":
        return _output_units(draw, space, 1, 2), "sigmoid"
    return _output_units(draw, space, 2, max(space.units + (2,))), "softmax"


def _targets(draw: st.DrawFn, loss: str, rows: int, units: int, families: frozenset[str]) -> list[list[float]]:
    if loss == "mse":
        return fam.matrix(draw, rows, units, families)
    if loss == "binary_crossentropy":
        bits = st.lists(st.integers(0, 1).map(float), min_size=units, max_size=units)
        return draw(st.lists(bits, min_size=rows, max_size=rows))
    classes = draw(st.lists(st.integers(0, units - 1), min_size=rows, max_size=rows))
    return [[float(k == c) for k in range(units)] for c in classes]


def _optimizer(draw: st.DrawFn, space: Space) -> dict[str, Any]:
    name = draw(_pick(space.optimizer))
    optimizer: dict[str, Any] = {"name": name, "learning_rate": draw(_pick(space.learning_rate))}
    fixed = dict(space.options)
    for option, values in OPTIONS[name].items():
        if option in fixed:
            optimizer[option] = draw(_pick(fixed[option]))
        elif draw(st.booleans()):
            optimizer[option] = draw(values)
    if name == "sgd" and "nesterov" in fixed:
        optimizer["nesterov"] = draw(_pick(fixed["nesterov"]))
    elif name == "sgd" and "momentum" in optimizer and draw(st.booleans()):
        optimizer["nesterov"] = True
    pin = draw(_pick(space.convention))
    if pin is not None:
        optimizer["convention"] = pin
    return optimizer


def _layers(draw: st.DrawFn, input_dim: int, output: tuple[int, str], families: frozenset[str],
            space: Space) -> list[dict[str, Any]]:
    if space.architecture is not None:
        shapes = list(space.architecture)
    else:
        hidden = draw(_pick(space.layers)) - 1
        drawn = draw(st.lists(st.tuples(_pick(space.units), _pick(space.activation)), min_size=hidden,
                              max_size=hidden))
        shapes = [(max(units, 2) if activation == "softmax" else units, activation) for units, activation in drawn]
        shapes.append(output)
    layers, n_in = [], input_dim
    for units, activation in shapes:
        layer: dict[str, Any] = {"units": units, "activation": activation,
                                 "kernel": fam.matrix(draw, n_in, units, families)}
        if not draw(_pick(space.use_bias)):
            layer["use_bias"] = False
        else:
            layer["bias"] = fam.matrix(draw, 1, units, families, bound=1.0)[0]
        layers.append(layer)
        n_in = units
    return layers


def _initializer(draw: st.DrawFn, space: Space) -> dict[str, Any] | None:
    """An initializer now and then (None: the explicit arrays stay)."""
    name = _now_and_then(draw, space.initializer, EXPLICIT, 4)
    if name == EXPLICIT:
        return None
    out: dict[str, Any] = {"name": name}
    for option, values in INITIALIZERS[name].items():
        if draw(st.booleans()):
            out[option] = draw(values)
    if name in SEEDED:
        out["seed"] = draw(st.integers(0, 1000))
    return out


def _initializers(draw: st.DrawFn, layers: list[dict[str, Any]], space: Space) -> None:
    """Some layers' explicit weights replaced by initializers."""
    for layer in layers:
        kernel = _initializer(draw, space)
        if kernel is not None:
            del layer["kernel"]
            layer["initializer"] = kernel
        bias = _initializer(draw, space) if "bias" in layer else None
        if bias is not None:
            del layer["bias"]
            layer["bias_initializer"] = bias


def _softmax_axes(draw: st.DrawFn, layers: list[dict[str, Any]], batch_rows: set[int], space: Space) -> None:
    """A softmax layer now and then over the rows (axis 0) instead of its units; where a batch has
    one row (an axis of length 1, degenerate), rarely."""
    for layer in layers:
        if layer["activation"] != "softmax":
            continue
        axis = _now_and_then(draw, space.axis, AXES[0], 4)
        if axis != AXES[0] and 1 in batch_rows and AXES[0] in space.axis and not _rarely(draw):
            axis = AXES[0]
        if axis != AXES[0]:
            layer["axis"] = axis


@st.composite
def examples(draw: st.DrawFn, frameworks: tuple[str, ...] = ("numpy", "keras", "torch"),
             space: Space = WHOLE) -> Example:
    """A scenario of ``space`` (module docstring) that ``frameworks`` can run (a convention pin one
    of them cannot compute is dropped)."""
    chosen = frozenset(draw(st.sets(st.sampled_from(space.families), max_size=2))) if space.families else frozenset()
    input_dim, rows = draw(_pick(space.input_dim)), draw(_pick(space.rows))
    loss = draw(_pick(space.loss))
    output = _output(draw, loss, space)
    if space.architecture is not None:
        output = space.architecture[-1]
    X = fam.matrix(draw, rows, input_dim, chosen)
    applied = {f for f in chosen if f in (fam.FLOAT32_EXACT, fam.SATURATING, fam.SUBNORMAL)}
    for family, edit in fam.DATA_EDITS.items():
        if family in chosen and edit(draw, X):
            applied.add(family)
    layers = _layers(draw, input_dim, output, chosen, space)
    if fam.RELU_ZEROS in applied and "bias" in layers[0]:
        layers[0]["bias"] = [0.0] * layers[0]["units"]
    for family, layer_edit in fam.LAYER_EDITS.items():
        if family in chosen and layer_edit(draw, X, layers, loss):
            applied.add(family)
    sizes = ["full", *range(1, rows + 1)] if space.batch_size is None else \
        [b for b in space.batch_size if b == "full" or int(b) <= rows] or ["full"]
    batch = draw(st.sampled_from(sizes))
    batches = 1 if batch == "full" else math.ceil(rows / int(batch))
    training: dict[str, Any] = {"loss": loss, "optimizer": _optimizer(draw, space), "batch_size": batch,
                                "epochs": draw(st.integers(1, max(1, space.max_steps // batches)))}
    if loss != "mse":
        training["clip"] = draw(_pick(space.clip))
    if draw(_pick(space.shuffle)):
        training["shuffle"], training["shuffle_seed"] = True, draw(st.integers(0, 1000))
    early_stop = _now_and_then(draw, space.early_stop_tol, None, 4)
    if early_stop is not None:
        training["early_stop_tol"] = early_stop
    if not applied & {fam.NEAR_OVERFLOW, fam.BINDING_CLIP, fam.RELU_ZEROS}:  # their weights are the point
        _initializers(draw, layers, space)
    b = rows if batch == "full" else int(batch)
    _softmax_axes(draw, layers, {b, rows % b or b, rows}, space)  # a batch's rows (forward only: all)
    raw = {"name": NAME, "data": {"X": X, "y": _targets(draw, loss, rows, output[0], chosen)},
           "model": {"input_dim": input_dim, "layers": layers}, "training": training}
    if _now_and_then(draw, space.forward_only, False, 8):  # forward only: each implementation's outputs on X
        del raw["training"]
    example = Example(raw, tuple(f for f in fam.FAMILIES if f in applied))
    try:
        check_runnable(example.scenario(), frameworks=frameworks)
    except BadInput:  # a pinned convention one of the frameworks cannot compute: run them unpinned
        del training["optimizer"]["convention"]
    return example
