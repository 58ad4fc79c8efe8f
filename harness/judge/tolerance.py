"""The one agreement rule, element by element, and the default tolerances.

Two values agree when::

    |a - b| <= atol + rtol * max(|a|, |b|)

with nan == nan and inf == inf of the same sign counted as equal (runs that diverge
together agree), nan against a number infinitely far, and the ``rtol`` term taken on
finite magnitudes only (an infinite value never widens its own allowance). Printed
lab values and answer keys use the same difference with their own allowance
(``exceeds``). Every comparison in the harness goes through this module.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Tolerance:
    """Element-wise test ``|a - b| <= atol + rtol * max(|a|, |b|)``."""

    rtol: float
    atol: float

    def describe(self) -> str:
        return f"rtol {self.rtol:g}, atol {self.atol:g}"


# Defaults per dtype. float64: every framework computes the same formulas in
# IEEE double; only the summation order of the batch means differs, so runs
# agree to a few ulps per step and the differences stay ~1e-13 over 5000 steps.
# float32: the same rounding in single precision (eps 1.2e-7), grown over the
# trajectory.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "float64": Tolerance(rtol=1e-12, atol=1e-14),
    "float32": Tolerance(rtol=1e-5, atol=1e-7),
}


@dataclass(frozen=True)
class ElementDiffs:
    """Per element of two arrays (float64, their broadcast shape)."""

    diff: Array  # |a - b|: 0 where equal (nan == nan, inf == inf), inf for nan against a number
    rel: Array  # diff / max(|a|, |b|): 0 where equal, inf where the larger magnitude is 0
    allowed: Array  # atol + rtol * max(|a|, |b|) over finite magnitudes
    used: Array  # diff / allowed: the fraction of the tolerance used (> 1 disagrees)

    @property
    def bad(self) -> npt.NDArray[np.bool_]:
        return self.diff > self.allowed


def difference(a: npt.ArrayLike, b: npt.ArrayLike) -> Array:
    """``|a - b|`` with the non-finite rule: 0 where equal (nan == nan, the same inf),
    inf where one side is nan and the other is not."""
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
        diff = np.where(same, 0.0, np.abs(a64 - b64))
    return np.where(np.isnan(diff), np.inf, diff)


def finite_magnitude(*values: npt.ArrayLike) -> Array:
    """max(|v|) over the values, element by element, with non-finite magnitudes counted as 0."""
    scale = np.maximum.reduce([np.abs(np.asarray(v, dtype=np.float64)) for v in values])
    return np.where(np.isfinite(scale), scale, 0.0)


def compare_elements(a: npt.ArrayLike, b: npt.ArrayLike, tol: Tolerance) -> ElementDiffs:
    """The agreement rule applied to every element of ``a`` and ``b``."""
    diff = difference(a, b)
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        scale = np.maximum(np.abs(a64), np.abs(b64))
        rel = np.where(diff == 0, 0.0, diff / np.where(scale == 0, np.inf, scale))
        rel = np.where((diff > 0) & (scale == 0), np.inf, rel)
        allowed = tol.atol + tol.rtol * finite_magnitude(a64, b64)
        used = np.where(diff == 0, 0.0, diff / np.where(allowed == 0, np.inf, allowed))
        used = np.where((diff > 0) & (allowed == 0), np.inf, used)
    return ElementDiffs(diff=diff, rel=rel, allowed=allowed, used=used)


def exceeds(computed: npt.ArrayLike, expected: npt.ArrayLike, allowance: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Elements of ``computed`` farther from ``expected`` than ``allowance`` (the same
    difference as the agreement rule, for a printed value's own allowance)."""
    result: npt.NDArray[np.bool_] = difference(computed, expected) > np.asarray(allowance, dtype=np.float64)
    return result
