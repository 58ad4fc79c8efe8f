"""Data sets: inline arrays or a built-in generator, always made in NumPy.

Generators are registered in ``GENERATORS``; each checks its own options
(``check``) and makes ``(X, y)`` in float64 (``make``). Global-state seeding
(``np.random.seed(s)`` then ``np.random.randn``) is reproduced with
``np.random.RandomState(s)``, which draws the same stream.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from harness.toml_fields import Table


@dataclass(frozen=True)
class Generator:
    name: str
    check: Callable[[Table, int], dict[str, Any]]
    make: Callable[[dict[str, Any]], tuple[np.ndarray, np.ndarray]]
    describe: Callable[[dict[str, Any]], str]


# --- teacher: targets from a fixed network -----------------------------------
# Inputs are inline (X = [[...]]) or n x input_dim standard normal draws
# (n, seed); y = teacher(X), a chain of [[data.teacher]] layers, each
# a = activation(a @ kernel + bias) with an optional bias.

def _check_teacher(t: Table, input_dim: int) -> dict[str, Any]:
    from reference.activations import ACTIVATIONS

    t.check_keys({"generator", "n", "seed", "X", "teacher"})
    opts: dict[str, Any] = {"input_dim": input_dim}
    if t.has("X"):
        X = t.array("X", ndim=2)
        if X.shape[1] != input_dim:
            raise t.error("X", f"{input_dim} columns (model.input_dim)", f"shape {X.shape}")
        opts["X"] = X
    else:
        opts["n"] = t.integer("n", minimum=1)
        opts["seed"] = t.integer("seed", minimum=0)
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
    from reference.layers import Dense

    if "X" in opts:
        X = opts["X"]
    else:
        X = np.random.RandomState(opts["seed"]).randn(opts["n"], opts["input_dim"])
    a = X
    for kernel, bias, activation in opts["teacher"]:
        layer = Dense(units=kernel.shape[1], activation=activation, use_bias=bias is not None)
        a, _ = layer.forward(a, kernel, bias)
    return X, a


def _describe_teacher(opts: dict[str, Any]) -> str:
    acts = " -> ".join(f"{k.shape[1]} {act}{'' if b is None else ' + bias'}" for k, b, act in opts["teacher"])
    if "X" in opts:
        inputs = f"inline {opts['X'].shape[0]} x {opts['input_dim']} inputs"
    else:
        inputs = f"{opts['n']} x {opts['input_dim']} standard normal inputs (np.random.seed({opts['seed']}))"
    return f"{inputs}, targets y = teacher(X) with a fixed teacher network ({acts})"


GENERATORS: dict[str, Generator] = {
    "teacher": Generator("teacher", _check_teacher, _make_teacher, _describe_teacher),
}


def check_data_spec(t: Table, *, input_dim: int, needs_targets: bool = True):
    """``needs_targets``: a training scenario needs y; a forward-only one may omit it."""
    from harness.scenario import DataSpec

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


def make_data(spec) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) in float64."""
    if spec.generator is None:
        return spec.X, spec.y
    return GENERATORS[spec.generator].make(spec.options)


def describe_data(spec) -> str:
    if spec.generator is None:
        targets = f"y {spec.y.shape[0]} x {spec.y.shape[1]}" if spec.y.shape[1] else "no targets"
        return f"inline, X {spec.X.shape[0]} x {spec.X.shape[1]}, {targets}"
    return GENERATORS[spec.generator].describe(spec.options)
