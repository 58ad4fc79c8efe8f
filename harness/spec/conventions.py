"""Optimizer conventions: which arithmetic each implementation computes, and how they differ.

Keras and torch give the same names to different formulas (``reference.optimizers``
states both as code), and Keras computes its own formulas in two ways: on TensorFlow
("keras") SGD's momentum and Adam's betas in ``beta**t`` are rounded to float32 even in
float64 runs, on JAX and torch ("keras-unrounded") they are exact. A scenario may pin
one with ``convention = "keras" | "keras-unrounded" | "torch"`` in its optimizer
table; the NumPy reference computes each, while the framework adapters only run
their own optimizer classes (``keras.optimizers.*``, ``torch.optim.*``), which
compute their own convention (``native``). Imports no framework.
"""
from __future__ import annotations

import re

from harness.spec.scenario import OptimizerSpec
from reference.optimizers import DEFAULTS, formulas

COMMON = "common"
FIELD = "training.optimizer.convention"
_CLASS_NAMES = {"sgd": "SGD", "adam": "Adam", "rmsprop": "RMSprop"}


def number(x: float) -> str:
    """A number as the reports write it: ``1e-7``, not ``1e-07``."""
    return re.sub(r"e([+-])0", r"e\1", f"{x:g}")  # 1e-07 -> 1e-7


def _defaults_differ(spec: OptimizerSpec, options: tuple[str, ...]) -> str:
    """' and default <option> <keras> vs <torch>, ...' over the omitted options whose defaults differ."""
    keras, torch = DEFAULTS[spec.name]["keras"], DEFAULTS[spec.name]["torch"]
    torch_name = {"rho": "alpha "}
    items = [f"{k} {number(keras[k])} vs {torch_name.get(k, '')}{number(torch[k])}"
             for k in options if k not in spec.options and keras[k] != torch[k]]
    return f" and default {', '.join(items)}" if items else ""


def _formulas_difference(spec: OptimizerSpec) -> str | None:
    """How Keras' and torch's formulas differ for this optimizer spec."""
    options = spec.options
    if spec.name == "sgd":
        if not options.get("momentum", 0.0):
            return None
        if options.get("nesterov", False):
            return ("SGD Nesterov form (Keras v = m*v - lr*g, w += m*v - lr*g; "
                    "torch buf = m*buf + g, w -= lr*(g + m*buf))")
        return "SGD momentum form (Keras v = m*v - lr*g; torch buf = m*buf + g)"
    if spec.name == "adam":
        phrase = ("Adam epsilon placement (Keras adds epsilon-hat to sqrt(v) before the bias "
                  "correction, torch after)")
        return phrase + _defaults_differ(spec, ("epsilon",))
    if spec.name == "rmsprop":
        return "RMSprop epsilon inside vs outside the square root" + _defaults_differ(spec, ("rho", "epsilon"))
    raise ValueError(f"no optimizer {spec.name!r}")


def _rounding_difference(spec: OptimizerSpec) -> str | None:
    """How "keras" and "keras-unrounded" differ for this optimizer spec: the hyper-parameters
    Keras on TensorFlow rounds to float32 (``reference.optimizers._cast``)."""
    rounded = "rounded to float32{} in float64 runs by Keras on TensorFlow (exact on JAX and torch)"
    if spec.name == "sgd":
        return "momentum " + rounded.format("") if spec.options.get("momentum", 0.0) else None
    if spec.name == "adam":
        return "beta_1 and beta_2 " + rounded.format(" in beta**t")
    if spec.name == "rmsprop":
        return None
    raise ValueError(f"no optimizer {spec.name!r}")


def convention_difference(spec: OptimizerSpec, a: str = "keras", b: str = "torch") -> str | None:
    """How conventions ``a`` and ``b`` differ for this optimizer spec, in a short phrase for
    report tables (the same phrase in either order); None when they compute the same arithmetic.

    Keras' formulas against torch's differ in the formulas; "keras" (Keras on TensorFlow) against
    any other convention also in the hyper-parameters it rounds to float32 in float64 runs (measured
    to be most of Keras' and torch's float64 difference for SGD momentum and default Adam:
    ``harness.judge.contributions``). With the defaults it is None exactly when all three
    conventions compute the same (plain SGD): the two Keras conventions differ only where Keras'
    and torch's formulas differ too.
    """
    parts = [_formulas_difference(spec) if formulas(a) != formulas(b) else None,
             _rounding_difference(spec) if (a == "keras") != (b == "keras") else None]
    return "; ".join(p for p in parts if p) or None


def native(spec: OptimizerSpec, convention: str) -> str:
    """The convention label of an implementation computing ``convention`` for this spec:
    "common" when all three conventions agree; "keras" for "keras-unrounded" where the two
    Keras conventions agree (so no second Keras reference run is needed); else ``convention``."""
    if convention_difference(spec) is None:
        return COMMON
    if convention == "keras-unrounded" and convention_difference(spec, "keras", convention) is None:
        return "keras"
    return convention


def pinned(spec: OptimizerSpec) -> str | None:
    """The scenario's ``convention`` option, if it sets one."""
    return spec.options.get("convention")


def optimizer_class(spec: OptimizerSpec) -> str:
    """The optimizer's class name in the frameworks (``Adam``)."""
    return _CLASS_NAMES[spec.name]
