"""Initial weights drawn by the harness in NumPy and copied into every framework.

Random initialisers need a ``seed`` (a run must be reproducible); each layer's
draw uses its own ``np.random.default_rng(seed)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from harness.spec.fields import Table


@dataclass(frozen=True)
class Initializer:
    """An initializer's name and its options (``seed`` and the draw's own)."""

    name: str
    options: dict[str, Any]


def _constant(shape: tuple[int, ...], opts: dict[str, Any], rng: np.random.Generator | None) -> np.ndarray:
    return np.full(shape, float(opts.get("value", 0.0)))


def _normal(shape, opts, rng) -> np.ndarray:
    return rng.normal(opts.get("mean", 0.0), opts.get("stddev", 1.0), size=shape)


def _uniform(shape, opts, rng) -> np.ndarray:
    return rng.uniform(opts.get("minval", -0.05), opts.get("maxval", 0.05), size=shape)


def _glorot_uniform(shape, opts, rng) -> np.ndarray:
    """U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)) (Keras' default kernel initialiser)."""
    fan_in, fan_out = (shape[0], shape[1]) if len(shape) == 2 else (shape[0], shape[0])
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


# name -> (draw, options it accepts, needs a seed)
INITIALIZERS: dict[str, tuple[Callable, set[str], bool]] = {
    "zeros": (lambda s, o, r: np.zeros(s), set(), False),
    "ones": (lambda s, o, r: np.ones(s), set(), False),
    "constant": (_constant, {"value"}, False),
    "normal": (_normal, {"mean", "stddev"}, True),
    "uniform": (_uniform, {"minval", "maxval"}, True),
    "glorot_uniform": (_glorot_uniform, set(), True),
}


def check_initializer(layer: Table, key: str) -> Initializer:
    """The initializer table ``key`` of a layer: a known name, a seed in ``[0, 2**32 - 1]`` for a random
    draw, finite options; ``normal``'s ``stddev`` >= 0 and ``uniform``'s ``minval <= maxval`` with a
    finite range (what numpy's draws accept)."""
    t = layer.sub(key)
    name = t.string("name", choices=tuple(INITIALIZERS))
    _, options, needs_seed = INITIALIZERS[name]
    t.check_keys({"name", "seed", *options})
    checked: dict[str, Any] = {}
    if needs_seed or t.has("seed"):
        checked["seed"] = t.seed("seed")
    for opt in sorted(options):
        if t.has(opt):
            checked[opt] = t.number(opt, minimum=0.0) if opt == "stddev" else t.number(opt)
    if name == "uniform":
        low, high = checked.get("minval", -0.05), checked.get("maxval", 0.05)
        if not low <= high:
            raise t.error("minval", f"a number <= maxval ({high:g})", low)
        if not np.isfinite(high - low):
            raise t.error("maxval", "maxval - minval within float64's range", f"{high:g} - {low:g}")
    return Initializer(name=name, options=checked)


def draw(init: Initializer, shape: tuple[int, ...]) -> np.ndarray:
    fn, _, needs_seed = INITIALIZERS[init.name]
    rng = np.random.default_rng(init.options["seed"]) if needs_seed else None
    return fn(shape, init.options, rng).astype(np.float64)
