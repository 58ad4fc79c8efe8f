"""Optimizer conventions: which arithmetic each implementation computes, and how they differ.

Keras and torch give the same names to different formulas (``reference.optimizers``
states both as code). A scenario may pin one with ``convention = "keras" | "torch"``
in its optimizer table; the NumPy reference computes either, while the Keras and
torch adapters only run their own optimizer classes (``keras.optimizers.*``,
``torch.optim.*``), which compute their own convention. Imports no framework.
"""
from __future__ import annotations

import re

from harness.spec.scenario import OptimizerSpec
from reference.optimizers import DEFAULTS

COMMON = "common"
FIELD = "training.optimizer.convention"
_CLASS_NAMES = {"sgd": "SGD", "adam": "Adam", "rmsprop": "RMSprop"}


def _number(x: float) -> str:
    return re.sub(r"e([+-])0", r"e\1", f"{x:g}")  # 1e-07 -> 1e-7


def _defaults_differ(spec: OptimizerSpec, options: tuple[str, ...]) -> str:
    """' and default <option> <keras> vs <torch>, ...' over the omitted options whose defaults differ."""
    keras, torch = DEFAULTS[spec.name]["keras"], DEFAULTS[spec.name]["torch"]
    torch_name = {"rho": "alpha "}
    items = [f"{k} {_number(keras[k])} vs {torch_name.get(k, '')}{_number(torch[k])}"
             for k in options if k not in spec.options and keras[k] != torch[k]]
    return f" and default {', '.join(items)}" if items else ""


def difference(spec: OptimizerSpec) -> str | None:
    """How the Keras and torch conventions differ for this optimizer spec, in a short
    phrase for report tables; None when they compute the same arithmetic."""
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


def pinned(spec: OptimizerSpec) -> str | None:
    """The scenario's ``convention`` option, if it sets one."""
    return spec.options.get("convention")


def optimizer_class(spec: OptimizerSpec) -> str:
    """The optimizer's class name in the frameworks (``Adam``)."""
    return _CLASS_NAMES[spec.name]
