"""The one agreement rule, element by element, and the default tolerances.

Two values agree when::

    |a - b| <= atol + rtol * max(|a|, |b|) + ulps * eps * M

where ``M`` is the largest finite magnitude the compared quantity (the loss, one parameter
array, one layer's outputs) has reached on either side, over all its elements, up to and
including the step compared (``magnitude_so_far``; a single array: its own largest magnitude).
The last term is the rounding floor of a quantity that crosses zero: the implementations round
each operation to an ulp of the numbers it combines (``eps * M``), not of the result, so a
parameter passing through 0 keeps the absolute differences it had when it was large, where
``rtol * max(|a|, |b|)`` gives it no room. Measured on catalogue runs (float32 and float64 alike):
at most 6.1 ulps of ``M`` between implementations (minibatch-momentum's bias crossing zero at
step 27, 1.5e-7 on a run magnitude of 0.57; xor-perceptron 5.8, minibatch-good-init 5.5), so
``ulps = 16`` leaves 2.6x room. ``M`` only grows with the steps compared so far, so a difference
that appears at step t is judged against what the run had reached by t, never against a later
blow-up.

When the computation amplifies rounding (a saturated sigmoid's ``1 - a``, a trajectory whose
steps grow a perturbation), a pair the fixed terms reject gets one more term, measured, never
assumed: ``+ ROUNDING_FACTOR * R``, where ``R`` is how far rounding alone moves the quantity at
that step, measured on the reference by Monte Carlo arithmetic (``harness.judge.rounding``: its run
made again with every operation's result moved one ulp at random, twice the largest rounding an
IEEE operation makes). Two implementations each within ``R`` of the exact result are within
``2 R`` of each other, hence ``ROUNDING_FACTOR = 2``. ``R`` is a few ulps of the values where
nothing amplifies (far below ``rtol``), so it decides only where rounding does. The term belongs
to the default tolerances (``Tolerance.measured``): a tolerance a scenario's ``[tolerance]`` table
(or a caller) sets is exactly what it says, so ``rtol = atol = ulps = 0`` still asks for bitwise
equality.

Where rounding decides whether a run stays finite (or when it stops early), ``R`` is infinite and
allows nothing: such a pair disagrees. From the step where ``R`` of the loss or of any parameter
reaches ``ROUNDING_DECIDES`` (a tenth) of that quantity's magnitude, rounding decides the runs too
(the quantities of a step are coupled: their digits are rounding's), and a pair that disagrees
there cannot be told from rounding. The comparison says so (``Comparison.rounding_decides``), and
the fuzzer counts the scenario as ill-conditioned by nature.

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
    """Element-wise test ``|a - b| <= atol + rtol * max(|a|, |b|) + ulps * eps * M`` (see the module
    docstring for ``M``); ``ulps = 0`` (the default) is the plain ``atol + rtol`` test."""

    rtol: float
    atol: float
    ulps: float = 0.0  # allowed ulps of the quantity's largest magnitude so far
    eps: float = 0.0  # the machine epsilon of those ulps (np.finfo(dtype).eps)
    # whether the measured rounding term applies (the default rule's; a tolerance a scenario or a
    # caller sets is exactly what it says: module docstring)
    measured: bool = False

    @property
    def mtol(self) -> float:
        """The coefficient of ``M``: ``ulps * eps``."""
        return self.ulps * self.eps

    def describe(self) -> str:
        """``rtol 1e-05, atol 1e-07 + 16 eps32 x M`` (M: the quantity's largest |value| so far)."""
        text = f"rtol {self.rtol:g}, atol {self.atol:g}"
        if self.mtol:
            name = EPS_NAMES.get(self.eps, f"x {self.eps:.3g}")
            text += f" + {self.ulps:g} {name} x M"
        return text


EPS32 = float(np.finfo(np.float32).eps)  # 1.19e-7
EPS64 = float(np.finfo(np.float64).eps)  # 2.22e-16
EPS_NAMES = {EPS32: "eps32", EPS64: "eps64"}
# The rounding floor of a quantity crossing zero, in ulps of its largest magnitude so far
# (measured worst 6.1 over the catalogue, both dtypes: see the module docstring).
MAGNITUDE_ULPS = 16.0
# |a - b| <= |a - exact| + |b - exact|, each bounded by the measured rounding R (module docstring).
ROUNDING_FACTOR = 2.0
# Rounding decides a quantity once it alone moves it by a tenth of its magnitude: the pair's
# difference there says nothing about either implementation's maths (module docstring).
ROUNDING_DECIDES = 0.1

# Defaults per dtype. float64: every framework computes the same formulas in
# IEEE double; only the summation order of the batch means differs, so runs
# agree to a few ulps per step and the differences stay ~1e-13 over 5000 steps.
# float32: the same rounding in single precision (eps 1.2e-7), grown over the
# trajectory. Both: 16 ulps of the quantity's largest magnitude so far, for
# values crossing zero (float64: 3.6e-15 x M, tight; float32: 1.9e-6 x M).
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "float64": Tolerance(rtol=1e-12, atol=1e-14, ulps=MAGNITUDE_ULPS, eps=EPS64, measured=True),
    "float32": Tolerance(rtol=1e-5, atol=1e-7, ulps=MAGNITUDE_ULPS, eps=EPS32, measured=True),
}


@dataclass(frozen=True)
class ElementDiffs:
    """Per element of two arrays (float64, their broadcast shape)."""

    diff: Array  # |a - b|: 0 where equal (nan == nan, inf == inf), inf for nan against a number
    rel: Array  # diff / max(|a|, |b|): 0 where equal, inf where the larger magnitude is 0
    allowed: Array  # atol + rtol * max(|a|, |b|) + mtol * M over finite magnitudes
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


def magnitude_so_far(a: npt.ArrayLike, b: npt.ArrayLike) -> Array:
    """``M`` per step of a quantity recorded over steps (axis 0): the largest finite ``|value|`` of
    either side over every element of steps ``0 .. t``, shaped to broadcast against ``a``."""
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a64.ndim == 0 or a64.shape[0] == 0:
        return np.asarray(float(finite_magnitude(a64, b64).max(initial=0.0)))
    per_step = finite_magnitude(a64, b64).reshape(a64.shape[0], -1).max(axis=1, initial=0.0)
    return np.maximum.accumulate(per_step).reshape((-1,) + (1,) * (a64.ndim - 1))


def compare_elements(a: npt.ArrayLike, b: npt.ArrayLike, tol: Tolerance, *,
                     magnitude: npt.ArrayLike | None = None, rounding: npt.ArrayLike | None = None) -> ElementDiffs:
    """The agreement rule applied to every element of ``a`` and ``b``. ``magnitude``: ``M``,
    broadcast against them (a trajectory: ``magnitude_so_far``); by default the largest finite
    magnitude of ``a`` and ``b`` over all their elements (one quantity at one moment).
    ``rounding``: ``R``, the measured rounding error (``harness.judge.rounding``), broadcast
    against them; None: the fixed terms alone."""
    diff = difference(a, b)
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        scale = np.maximum(np.abs(a64), np.abs(b64))
        rel = np.where(diff == 0, 0.0, diff / np.where(scale == 0, np.inf, scale))
        rel = np.where((diff > 0) & (scale == 0), np.inf, rel)
        finite = finite_magnitude(a64, b64)
        allowed = tol.atol + tol.rtol * finite
        if tol.mtol:
            m = finite.max(initial=0.0) if magnitude is None else np.asarray(magnitude, dtype=np.float64)
            allowed = allowed + tol.mtol * m
        if rounding is not None:
            r = np.asarray(rounding, dtype=np.float64)  # inf: rounding decides there; it allows nothing
            allowed = allowed + ROUNDING_FACTOR * np.where(np.isfinite(r), r, 0.0)
        used = np.where(diff == 0, 0.0, diff / np.where(allowed == 0, np.inf, allowed))
        used = np.where((diff > 0) & (allowed == 0), np.inf, used)
    return ElementDiffs(diff=diff, rel=rel, allowed=allowed, used=used)


def exceeds(computed: npt.ArrayLike, expected: npt.ArrayLike, allowance: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Elements of ``computed`` farther from ``expected`` than ``allowance`` (the same
    difference as the agreement rule, for a printed value's own allowance)."""
    result: npt.NDArray[np.bool_] = difference(computed, expected) > np.asarray(allowance, dtype=np.float64)
    return result
