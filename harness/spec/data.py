"""Data sets: inline arrays or a built-in generator, always made in NumPy.

Generators are registered in ``GENERATORS``; each checks its own options
(``check``), makes the training ``(X, y)`` in float64 (``make``) and, if it
has any, the held-out evaluation splits (``held_out``: ``{"validation": (X, y),
...}``, never trained on). Global-state seeding (``np.random.seed(s)`` then
``np.random.randn``) is reproduced with ``np.random.RandomState(s)``, which
draws the same stream.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from harness.spec.fields import Table
from reference.activations import ACTIVATIONS
from reference.layers import Dense


@dataclass(frozen=True)
class DataSpec:
    """Inline ``X`` (and ``y``), or a generator's name and its checked options."""

    X: np.ndarray | None = None
    y: np.ndarray | None = None
    generator: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Generator:
    """``rows`` and ``columns``: the training data's number of rows and of target columns, known
    from the checked options without drawing anything (the loader checks the model against them);
    ``drawn``: every row drawn, held-out splits included (the memory budget counts them; default ``rows``)."""

    name: str
    check: Callable[[Table, int], dict[str, Any]]
    make: Callable[[dict[str, Any]], tuple[np.ndarray, np.ndarray]]
    describe: Callable[[dict[str, Any]], str]
    rows: Callable[[dict[str, Any]], int]
    columns: Callable[[dict[str, Any]], int]
    held_out: Callable[[dict[str, Any]], dict[str, tuple[np.ndarray, np.ndarray]]] | None = None
    drawn: Callable[[dict[str, Any]], int] | None = None


# --- teacher: targets from a fixed network -----------------------------------
# Inputs are inline (X = [[...]]) or n x input_dim standard normal draws
# (n, seed); y = teacher(X), a chain of [[data.teacher]] layers, each
# a = activation(a @ kernel + bias) with an optional bias.

def _check_teacher(t: Table, input_dim: int) -> dict[str, Any]:
    t.check_keys({"generator", "n", "seed", "X", "teacher"})
    opts: dict[str, Any] = {"input_dim": input_dim}
    if t.has("X"):
        X = t.array("X", ndim=2)
        if X.shape[1] != input_dim:
            raise t.error("X", f"{input_dim} columns (model.input_dim)", f"shape {X.shape}")
        opts["X"] = X
    else:
        opts["n"] = t.integer("n", minimum=1)
        opts["seed"] = t.seed("seed")
    layers, n_in = [], input_dim
    for lt in t.tables("teacher"):
        lt.check_keys({"kernel", "bias", "activation"})
        kernel = lt.array("kernel", ndim=2)
        if kernel.shape[0] != n_in:
            raise lt.error("kernel", f"{n_in} rows (the inputs of this teacher layer)", f"shape {kernel.shape}")
        bias = lt.array("bias", None, ndim=1)
        if bias is not None and bias.shape != (kernel.shape[1],):
            raise lt.error("bias", f"shape ({kernel.shape[1]},)", f"shape {bias.shape}")
        layers.append((kernel, bias, lt.string("activation", "linear", choices=tuple(ACTIVATIONS))))
        n_in = kernel.shape[1]
    if not layers:
        raise t.error("teacher", "at least one [[data.teacher]] layer", "none")
    opts["teacher"] = layers
    return opts


def _make_teacher(opts: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    if "X" in opts:
        X = opts["X"]
    else:
        X = np.random.RandomState(opts["seed"]).randn(opts["n"], opts["input_dim"])
    a = X
    for kernel, bias, activation in opts["teacher"]:
        layer = Dense(units=kernel.shape[1], activation=activation, use_bias=bias is not None)
        a, _ = layer.forward(a, kernel, bias)
    return X, a


def _rows_teacher(opts: dict[str, Any]) -> int:
    return int(opts["X"].shape[0]) if "X" in opts else int(opts["n"])


def _columns_teacher(opts: dict[str, Any]) -> int:
    return int(opts["teacher"][-1][0].shape[1])


def _describe_teacher(opts: dict[str, Any]) -> str:
    acts = " -> ".join(f"{k.shape[1]} {act}{'' if b is None else ' + bias'}" for k, b, act in opts["teacher"])
    if "X" in opts:
        inputs = f"inline {opts['X'].shape[0]} x {opts['input_dim']} inputs"
    else:
        inputs = f"{opts['n']} x {opts['input_dim']} standard normal inputs (np.random.seed({opts['seed']}))"
    return f"{inputs}, targets y = teacher(X) with a fixed teacher network ({acts})"


# --- sine-surface: the 002 notebook's regression data -------------------------
# np.random.seed(seed); noise = normal(0, 1, n); x1 = uniform(-5, 5, n);
# x2 = uniform(-5, 5, n), in that draw order; X = [x1, x2] as columns and
# y = x1*x2 + x1**2 + exp(sin(x2)) + noise as an (n, 1) column, summed left
# to right as the notebook writes it (another order changes the last bits of
# y, and then of its printed MSE 198.65838851753207).

def _check_sine_surface(t: Table, input_dim: int) -> dict[str, Any]:
    t.check_keys({"generator", "n", "seed"})
    if input_dim != 2:
        raise t.error("generator", "model.input_dim = 2 for generator \"sine-surface\" (features x1, x2)",
                      f"input_dim {input_dim}")
    return {"n": t.integer("n", minimum=1), "seed": t.seed("seed")}


def _make_sine_surface(opts: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    n = opts["n"]
    rs = np.random.RandomState(opts["seed"])
    noise = rs.normal(0, 1, n)
    x1 = rs.uniform(-5, 5, n)
    x2 = rs.uniform(-5, 5, n)
    y = x1 * x2 + x1 ** 2 + np.exp(np.sin(x2)) + noise
    return np.column_stack([x1, x2]), y.reshape(n, 1)


def _describe_sine_surface(opts: dict[str, Any]) -> str:
    return (f"{opts['n']} points x1, x2 ~ U(-5, 5) (np.random.seed({opts['seed']}), noise drawn first), "
            "y = x1*x2 + x1**2 + exp(sin(x2)) + N(0, 1) noise")


# --- xor: two quadrants against the other two ---------------------------------
# One np.random.RandomState(seed).uniform(-1, 1, (n_train + n_validation +
# n_test, 2)) draw; each coordinate u is pushed out of the band |u| < margin
# by u -> sign(u) * (margin + (1 - margin) * |u|), so it is uniform on
# [-1, -margin] u [margin, 1]; label 1 when exactly one coordinate is positive
# ((x1 > 0) xor (x2 > 0)), as an (n, 1) column of 0/1. Rows are taken in draw
# order: the first n_train train, then validation, then test.

XOR_SPLITS = ("validation", "test")


def _check_xor(t: Table, input_dim: int) -> dict[str, Any]:
    t.check_keys({"generator", "n_train", "n_validation", "n_test", "seed", "margin"})
    if input_dim != 2:
        raise t.error("generator", "model.input_dim = 2 for generator \"xor\" (features x1, x2)",
                      f"input_dim {input_dim}")
    return {"n_train": t.integer("n_train", 800, minimum=1),
            "n_validation": t.integer("n_validation", 100, minimum=0),
            "n_test": t.integer("n_test", 100, minimum=0),
            "seed": t.seed("seed"),
            "margin": t.number("margin", 0.0, minimum=0.0, below=1.0)}


def _xor_points(opts: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    n = opts["n_train"] + opts["n_validation"] + opts["n_test"]
    u = np.random.RandomState(opts["seed"]).uniform(-1, 1, (n, 2))
    X = np.sign(u) * (opts["margin"] + (1 - opts["margin"]) * np.abs(u))
    y = np.logical_xor(X[:, 0] > 0, X[:, 1] > 0).astype(np.float64).reshape(n, 1)
    return X, y


def _make_xor(opts: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    X, y = _xor_points(opts)
    return X[:opts["n_train"]], y[:opts["n_train"]]


def _held_out_xor(opts: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    X, y = _xor_points(opts)
    splits, start = {}, opts["n_train"]
    for name in XOR_SPLITS:
        end = start + opts[f"n_{name}"]
        if end > start:
            splits[name] = (X[start:end], y[start:end])
        start = end
    return splits


def _describe_xor(opts: dict[str, Any]) -> str:
    margin = f", |x_i| >= {opts['margin']:g}" if opts["margin"] else ""
    return (f"XOR: x ~ U(-1, 1)^2{margin} (RandomState({opts['seed']})), y = (x1 > 0) xor (x2 > 0); "
            f"{opts['n_train']} train, {opts['n_validation']} validation, {opts['n_test']} test points")


def _one_column(opts: dict[str, Any]) -> int:
    return 1


def _rows_n(opts: dict[str, Any]) -> int:
    return int(opts["n"])


def _rows_n_train(opts: dict[str, Any]) -> int:
    return int(opts["n_train"])


def _rows_all_splits(opts: dict[str, Any]) -> int:
    return int(opts["n_train"]) + sum(int(opts[f"n_{name}"]) for name in XOR_SPLITS)


GENERATORS: dict[str, Generator] = {
    "teacher": Generator("teacher", _check_teacher, _make_teacher, _describe_teacher,
                         rows=_rows_teacher, columns=_columns_teacher),
    "sine-surface": Generator("sine-surface", _check_sine_surface, _make_sine_surface, _describe_sine_surface,
                              rows=_rows_n, columns=_one_column),
    "xor": Generator("xor", _check_xor, _make_xor, _describe_xor, rows=_rows_n_train,
                     columns=_one_column, held_out=_held_out_xor, drawn=_rows_all_splits),
}


def check_data_spec(t: Table, *, input_dim: int, needs_targets: bool = True) -> DataSpec:
    """``needs_targets``: a training scenario needs y; a forward-only one may omit it."""
    if t.has("generator"):
        name = t.string("generator", choices=tuple(GENERATORS))
        return DataSpec(generator=name, options=GENERATORS[name].check(t, input_dim))
    t.check_keys({"X", "y", "generator"})
    X = t.array("X", ndim=2)
    if X.shape[1] != input_dim:
        raise t.error("X", f"{input_dim} columns (model.input_dim)", f"shape {X.shape}")
    if not needs_targets and not t.has("y"):
        return DataSpec(X=X, y=np.zeros((X.shape[0], 0)))
    y = t.array("y", ndim=2)
    if y.shape[0] != X.shape[0]:
        raise t.error("y", f"{X.shape[0]} rows (one per row of X)", f"shape {y.shape}")
    return DataSpec(X=X, y=y)


def data_rows(spec: DataSpec) -> int:
    """The number of training rows (without drawing a generator's data)."""
    if spec.generator is None:
        assert spec.X is not None, "inline data has X"
        return int(spec.X.shape[0])
    return GENERATORS[spec.generator].rows(spec.options)


def drawn_rows(spec: DataSpec) -> int:
    """Every row the data holds once drawn: the training rows and a generator's held-out splits."""
    if spec.generator is None:
        return data_rows(spec)
    generator = GENERATORS[spec.generator]
    return (generator.drawn or generator.rows)(spec.options)


def target_columns(spec: DataSpec) -> int:
    """The number of columns of y (0: a forward-only scenario's inline data without targets)."""
    if spec.generator is None:
        assert spec.y is not None, "the loader fills y"
        return int(spec.y.shape[1])
    return GENERATORS[spec.generator].columns(spec.options)


def make_data(spec: DataSpec) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) in float64."""
    if spec.generator is None:
        assert spec.X is not None and spec.y is not None, "inline data has X and y (the loader fills y)"
        return spec.X, spec.y
    return GENERATORS[spec.generator].make(spec.options)


def make_splits(spec: DataSpec) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The held-out evaluation splits in float64 (``{}`` when the data has none)."""
    held_out = None if spec.generator is None else GENERATORS[spec.generator].held_out
    return {} if held_out is None else held_out(spec.options)


def describe_data(spec: DataSpec) -> str:
    if spec.generator is None:
        X, y = make_data(spec)
        targets = f"y {y.shape[0]} x {y.shape[1]}" if y.shape[1] else "no targets"
        return f"inline, X {X.shape[0]} x {X.shape[1]}, {targets}"
    return GENERATORS[spec.generator].describe(spec.options)
