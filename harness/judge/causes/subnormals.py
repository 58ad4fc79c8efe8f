"""A cause of divergence that is a property of a framework's arithmetic, not a defect: subnormal
numbers flushed to zero.

IEEE 754 fills the gap between 0 and the smallest normal number (``2.2e-308`` in float64,
``1.2e-38`` in float32) with subnormal numbers: ``sigmoid(-709.78)`` is ``5.6e-309`` in NumPy and
torch, ``1e-310 * 1.0`` is ``1e-310``. TensorFlow runs its CPU kernels with the processor's
flush-to-zero and denormals-are-zero modes on (``tsl::port::ScopedFlushDenormal`` around every
op): a subnormal argument is read as 0 and a subnormal result is written as 0 (measured on the
pinned 2.21: both examples above give 0.0 in eager float64). Where the lost magnitude matters the
runs part: a binary cross-entropy without a clip of a sigmoid flushed to 0 takes ``log(0)``, and
``0 x log(0)`` is nan at step 0, where the reference's value is finite.

The measurement runs none of the framework's code: the reference's own run of the side's scenario
is made again with every NumPy operation's arguments and results flushed to zero (``Flushed``:
an ``ndarray`` whose ``__array_ufunc__`` and ``__array_function__`` flush what goes in and what
comes out, as DAZ and FTZ do) and the side's run must agree with it at every recorded step
(inf and nan included, at the same elements), while the reference's run, unflushed, does not
(so the flush is what parts them). A side whose adapter declares no such arithmetic
(``Adapter.subnormals`` None: torch, NumPy) is never accounted for by it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from harness.judge.arithmetic import Arithmetic
from harness.judge.causes.evidence import declares, made_if_acting
from harness.judge.controls import Pair
from harness.judge.rounding import Errors, rounding_error
from harness.judge.runs import Runs
from harness.run.adapters.numpy_reference import NumpyReference
from harness.run.plan import TrainingPlan
from harness.run.trajectory import Trajectory

NAME = "subnormals flushed to zero"
EXPLANATION = ("the framework's CPU kernels read and write subnormal numbers (below 2.2e-308 in float64, "
               "1.2e-38 in float32) as 0 (flush-to-zero, denormals-are-zero), where IEEE arithmetic, the "
               "reference's, keeps them")


FLUSHES = [0]  # how many operations flushed something, ever (a gate: did a run flush anything?)


def flush(value: Any) -> Any:
    """``value`` with every subnormal element replaced by a zero of its sign (other values as they are)."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        plain = value.view(np.ndarray)
        with np.errstate(invalid="ignore"):
            small = (np.abs(plain) < np.finfo(plain.dtype).tiny) & (plain != 0)
        if not small.any():
            return plain
        FLUSHES[0] += 1
        return np.where(small, np.copysign(plain.dtype.type(0), plain), plain)
    if isinstance(value, np.floating) and value != 0 and abs(value) < np.finfo(value.dtype).tiny:
        FLUSHES[0] += 1
        return np.copysign(value.dtype.type(0), value)
    return value


class Flushed(Arithmetic):
    """An array whose every NumPy operation reads subnormal arguments as 0 and writes subnormal
    results as 0, as a processor with DAZ and FTZ on does (its functions' results too: ``np.where``)."""

    @classmethod
    def argument(cls, value: Any) -> Any:
        return flush(value)

    @classmethod
    def result(cls, value: Any, ufunc: np.ufunc, method: str) -> Any:  # noqa: ARG003 - every operation flushes
        return flush(value)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return type(self).wrap(flush(func(*_plain(args), **{k: _plain(v) for k, v in kwargs.items()})))


def _plain(value: Any) -> Any:
    """A function's argument as NumPy sees it with denormals-are-zero: plain, flushed."""
    if isinstance(value, (tuple, list)):
        return type(value)(_plain(v) for v in value)
    return flush(value.view(np.ndarray) if isinstance(value, Arithmetic) else value)


def _unwrap(run: Trajectory) -> Trajectory:
    """The run's arrays plain again (the record holds what the arithmetic gave)."""
    def plain(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return np.array(value.view(np.ndarray))
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value
    for name, value in vars(run).items():
        setattr(run, name, plain(value))
    return run


def flushed_run(plan: TrainingPlan) -> Trajectory:
    """The reference's run of ``plan`` with every operation's arguments and results flushed to zero."""
    return _unwrap(NumpyReference().run(Flushed.plan(plan)))


def applies(pair: Pair) -> bool:
    """A side's framework flushes subnormals to zero (``Adapter.subnormals``)."""
    return any(declares(pair.runs, label, "subnormals") for label in (pair.comparison.a, pair.comparison.b))


def reproduce(runs: Runs, label: str, plan: TrainingPlan, step: int) -> Trajectory | None:
    """The reference's run of ``plan`` in ``label``'s arithmetic, flushed, when its framework flushes and
    the flush acts by ``step`` (``made_if_acting``)."""
    return made_if_acting(FLUSHES, flushed_run, plan, step) if declares(runs, label, "subnormals") else None


def rounding(plan: TrainingPlan, runs: int) -> Errors:
    """Rounding's reach in the flushed reference's run (the agreement rule's ``R`` for a side against it)."""
    return rounding_error(plan, runs, arithmetic=Flushed)
