"""The tolerance a value inherits from rounded inputs: one method for lab values and answer keys.

When inputs were themselves printed rounded (a table at 2 decimals), each input element
``x_j`` is only known to ``±half a unit`` in its last printed digit (``0.5 * 10**-d_j``,
``harness.spec.printed.half_unit``). A value ``f`` computed from them then moves by at
most, to first order and in the worst case::

    propagated_i = sum_j |d f_i / d x_j| * 0.5 * 10**-d_j

Each derivative is a central difference of two re-computations by the reference,
``(f(x_j + h) - f(x_j - h)) / 2h`` with ``h = 1e-6 * max(1, |x_j|)``: the reference is
the value's definition, so no framework (and no autograd) is involved.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from harness.spec.printed import half_unit

Inputs = dict[str, np.ndarray]


def propagated(fn: Callable[[Inputs], np.ndarray], inputs: Inputs, decimals: dict[str, int]) -> np.ndarray:
    """``sum_j |d fn(inputs) / d x_j| * 0.5 * 10**-decimals[name of x_j]`` over every element
    ``x_j`` of the inputs named in ``decimals`` (the others stay as given), by central differences.

    ``fn(inputs) -> value``: the reference's value computed from ``inputs`` (all of them,
    by name); the result has the value's shape.
    """
    total: np.ndarray | None = None
    for name, d in decimals.items():
        base = np.asarray(inputs[name], dtype=np.float64)
        half = float(half_unit(0.0, decimals=d))
        for index in np.ndindex(base.shape):
            h = 1e-6 * max(1.0, abs(float(base[index])))
            sides = []
            for sign in (1.0, -1.0):
                moved = base.copy()
                moved[index] += sign * h
                sides.append(np.asarray(fn({**inputs, name: moved}), dtype=np.float64))
            term = np.abs((sides[0] - sides[1]) / (2 * h)) * half
            total = term if total is None else total + term
    if total is None:  # nothing rounded (or only empty inputs): nothing propagated
        return np.zeros(np.shape(fn(inputs)))
    return total
