"""Each compute kind's fields read from an ``[[answer]]`` table into its question
(``harness.answers.questions``): one-line ``BadInput`` naming the answer and the field on any
problem. ``COMPUTE_KINDS`` lists every kind's parser and the fields it accepts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from harness.answers.questions import (
    ActivationQuestion,
    DenseQuestion,
    GradientQuestion,
    LossQuestion,
    NetworkQuestion,
    Question,
    ScenarioQuestion,
    TrainQuestion,
)
from harness.errors import MISSING, BadInput
from harness.run.labels import with_convention
from harness.spec.catalogue import resolve
from harness.spec.conventions import convention_difference, native, pinned
from harness.spec.data import target_columns
from harness.spec.fields import Table
from harness.spec.scenario import DTYPES, LayerSpec, Scenario, check_step, layer_axis, parse_optimizer
from reference.activations import ACTIVATIONS
from reference.losses import CLIP_MODES, LOSSES
from reference.optimizers import CONVENTIONS

NETWORK_OUTPUTS = ("output", "prediction", "accuracy")
SCENARIO_QUANTITIES = ("params", "gradient", "loss", "output", "accuracy", "history")
PIN_CONVENTION = "convention = " + " or ".join(f'"{c}"' for c in CONVENTIONS)


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
                            loss=t.string("loss", choices=tuple(LOSSES)),
                            clip=t.string("clip", "none", choices=CLIP_MODES))


def _train(t: Table, key_dir: Path) -> TrainQuestion:
    g = _gradient(t, key_dir)
    opt = t.sub("optimizer")
    spec = parse_optimizer(opt)
    if convention_difference(spec) is not None and pinned(spec) is None:
        raise opt.error("convention", f"{PIN_CONVENTION}: the answer depends on it ({convention_difference(spec)})",
                        MISSING)
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
        if spec is not None and convention_difference(spec) is not None and pinned(spec) is None and (
                quantity == "params" or step != 0):
            raise t.error("convention", f"{PIN_CONVENTION}: scenario {scenario.name}'s answer depends on it "
                                        f"({convention_difference(spec)})", MISSING)
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
