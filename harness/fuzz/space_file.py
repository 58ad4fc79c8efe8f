"""``--space FILE.toml``: the draw narrowed or widened in the scenario format's own words.

Every field is optional and takes one value or a list of the values allowed (the first is the
one examples shrink towards); what a file leaves out keeps the whole space (``space.WHOLE``)::

    frameworks = ["numpy", "keras@jax"]   # as --frameworks (the command line wins)
    dtype = "float64"                      # as --dtype: float64, float32 or both

    [data]
    rows = [4, 8]
    families = []                          # edge-value families; [] = plain values only

    [model]
    input_dim = 2
    layers = [1, 2]                        # how many layers; or a fixed architecture:
    # [[model.layers]]  units = 2  activation = "tanh"   (one table per layer)
    units = [1, 2, 3, 4, 5, 6, 7, 8]       # widened beyond the default 1-4
    activation = ["tanh", "sigmoid"]
    use_bias = true
    initializer = ["explicit", "glorot_uniform"]   # "explicit": weights as arrays; or initializers' names
    axis = -1                              # a softmax layer's axis: -1 (its units) or 0 (the rows)

    [training]
    loss = "mse"
    batch_size = ["full", 2]
    shuffle = false
    clip = "none"
    max_steps = 20                         # at most this many steps (default 50)
    early_stop_tol = "none"                # or tolerances in (0, 1); "none": no early stop
    forward_only = false                   # true: only scenarios without [training]

    [training.optimizer]
    name = "adam"
    learning_rate = [0.001, 0.01]
    convention = ["torch", "none"]         # "none": not pinned
    amsgrad = true                         # any option of the named optimizers: always set, to these

A bad file is bad input (exit 2): one line naming the file, the field and what was expected.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from harness.errors import BadInput
from harness.fuzz import families as fam
from harness.fuzz import space as sp
from harness.run.adapters import ALIASES, ALL_FRAMEWORKS
from harness.spec.fields import Table, read_toml
from harness.spec.scenario import DTYPES

MAX_COUNT = {"rows": 64, "input_dim": 8, "layers": 4, "units": 8}  # the widest the engine allows
MAX_STEPS = 10_000
UNPINNED = "none"


def _values(t: Table, key: str, expected: str, ok: Callable[[Any], bool]) -> tuple[Any, ...] | None:
    """The allowed values of ``key`` (one value or a non-empty list of them), each ``ok``; None when absent."""
    if not t.has(key):
        return None
    value = t.data[key]
    values = value if isinstance(value, list) else [value]
    if not values:
        raise t.error(key, f"{expected}, or a non-empty list of them", value)
    for v in values:
        if not ok(v):
            raise t.error(key, f"{expected}, or a list of them", v)
    return tuple(dict.fromkeys(values))


def _count(t: Table, key: str, highest: int) -> tuple[int, ...] | None:
    return _values(t, key, f"an integer from 1 to {highest}",
                   lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= highest)


def _among(t: Table, key: str, allowed: tuple[Any, ...]) -> tuple[Any, ...] | None:
    return _values(t, key, f"one of {list(allowed)}", lambda v: isinstance(v, str) and v in allowed)


def _flags(t: Table, key: str) -> tuple[bool, ...] | None:
    return _values(t, key, "true or false", lambda v: isinstance(v, bool))


def _numbers(t: Table, key: str, expected: str, ok: Callable[[float], bool]) -> tuple[Any, ...] | None:
    return _values(t, key, expected, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and ok(v))


def read_space(path: str | Path) -> tuple[sp.Space, tuple[str, ...] | None, tuple[str, ...] | None]:
    """The space a file describes, and its ``frameworks`` and dtypes (None where it says none)."""
    top = Table(read_toml(path, what="space file"), file=path)
    top.check_keys({"frameworks", "dtype", "data", "model", "training"})
    names = _values(top, "frameworks", f"an implementation of {list(ALL_FRAMEWORKS)}",
                    lambda v: isinstance(v, str) and ALIASES.get(v, v) in ALL_FRAMEWORKS)
    frameworks = None if names is None else tuple(dict.fromkeys(ALIASES.get(n, n) for n in names))
    dtype = top.string("dtype", None, choices=(*DTYPES, "both"))
    dtypes = None if dtype is None else DTYPES if dtype == "both" else (dtype,)
    data, model, training = (top.sub(k, required=False) for k in ("data", "model", "training"))
    data.check_keys({"rows", "families"})
    model.check_keys({"input_dim", "layers", "units", "activation", "use_bias", "initializer", "axis"})
    training.check_keys({"loss", "batch_size", "shuffle", "clip", "max_steps", "optimizer", "early_stop_tol",
                         "forward_only"})
    optimizer = training.sub("optimizer", required=False)
    options = sorted({o for opts in sp.OPTIONS.values() for o in opts} | {"nesterov"})
    optimizer.check_keys({"name", "learning_rate", "convention", *options})
    fields: dict[str, Any] = {
        "rows": _count(data, "rows", MAX_COUNT["rows"]),
        "families": () if data.data.get("families") == [] else _among(data, "families", fam.FAMILIES),
        "input_dim": _count(model, "input_dim", MAX_COUNT["input_dim"]),
        "units": _count(model, "units", MAX_COUNT["units"]),
        "activation": _among(model, "activation", sp.ACTIVATIONS),
        "use_bias": _flags(model, "use_bias"),
        "loss": _among(training, "loss", sp.LOSSES),
        "batch_size": _values(training, "batch_size", f'"full" or an integer from 1 to {MAX_COUNT["rows"]}',
                              lambda v: v == "full" or (isinstance(v, int) and not isinstance(v, bool)
                                                        and 1 <= v <= MAX_COUNT["rows"])),
        "shuffle": _flags(training, "shuffle"),
        "clip": _among(training, "clip", sp.CLIPS),
        "optimizer": _among(optimizer, "name", tuple(sp.OPTIONS)),
        "learning_rate": _numbers(optimizer, "learning_rate", "a learning rate in (0, 10]", lambda v: 0 < v <= 10),
        "initializer": _among(model, "initializer", (sp.EXPLICIT, *sp.INITIALIZERS)),
        "axis": _values(model, "axis", f"a softmax axis of {list(sp.AXES)}",
                        lambda v: isinstance(v, int) and not isinstance(v, bool) and v in sp.AXES),
        "forward_only": _flags(training, "forward_only"),
    }
    stops = _values(training, "early_stop_tol", f'"{UNPINNED}" or a tolerance in (0, 1)',
                    lambda v: v == UNPINNED or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1))
    if stops is not None:
        fields["early_stop_tol"] = tuple(None if v == UNPINNED else float(v) for v in stops)
    pins = _among(optimizer, "convention", (UNPINNED, *(p for p in sp.PINS if p is not None)))
    if pins is not None:
        fields["convention"] = tuple(None if p == UNPINNED else p for p in pins)
    if training.has("max_steps"):
        fields["max_steps"] = training.integer("max_steps", minimum=1, maximum=MAX_STEPS)
    fields["options"] = tuple((o, _option(optimizer, o)) for o in options if optimizer.has(o))
    if model.has("layers") and isinstance(model.data["layers"], list) and model.data["layers"] \
            and all(isinstance(v, dict) for v in model.data["layers"]):
        fields["architecture"] = _architecture(model)
    else:
        fields["layers"] = _count(model, "layers", MAX_COUNT["layers"])
    space = replace(sp.WHOLE, **{k: v for k, v in fields.items() if v is not None})
    return _consistent(space, top), frameworks, dtypes


def _option(t: Table, option: str) -> tuple[Any, ...]:
    if option in ("amsgrad", "centered", "nesterov"):
        found = _flags(t, option)
    elif option == "epsilon":
        found = _numbers(t, option, "an epsilon in (0, 1)", lambda v: 0 < v < 1)
    else:  # momentum, rho, beta_1, beta_2
        found = _numbers(t, option, "a number in [0, 1)", lambda v: 0 <= v < 1)
    assert found is not None
    return found


def _architecture(model: Table) -> tuple[tuple[int, str], ...]:
    shapes = []
    for layer in model.tables("layers"):
        layer.check_keys({"units", "activation"})
        units = layer.integer("units", minimum=1, maximum=MAX_COUNT["units"])
        activation = layer.string("activation", "linear", choices=sp.ACTIVATIONS)
        if activation == "softmax" and units < 2:
            raise layer.error("units", "at least 2 units for a softmax layer", units)
        shapes.append((units, activation))
    if len(shapes) > MAX_COUNT["layers"]:
        raise model.error("layers", f"at most {MAX_COUNT['layers']} layers", len(shapes))
    return tuple(shapes)


def _consistent(space: sp.Space, top: Table) -> sp.Space:
    """``space`` with only the losses its fixed architecture can train; a space no valid scenario is
    drawn from is bad input, named by the field that rules it out."""
    if space.architecture is not None:
        units, activation = space.architecture[-1]
        valid = {"mse"} | ({"binary_crossentropy"} if activation == "sigmoid" else set()) | \
            ({"categorical_crossentropy"} if activation == "softmax" else set())
        losses = tuple(loss for loss in space.loss if loss in valid)
        if not losses:
            raise BadInput(top.file, "training.loss", f"a loss valid for the last layer's {activation} "
                           f"(one of {sorted(valid)})", list(space.loss))
        return replace(space, loss=losses)
    if set(space.activation) == {"softmax"} and max(space.units) < 2:
        raise BadInput(top.file, "model.units", "at least 2 units allowed when every activation is softmax",
                       list(space.units))
    return space
