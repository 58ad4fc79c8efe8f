"""How far rounding alone can move a scenario's numbers in a dtype, measured on the reference by
Monte Carlo arithmetic: the agreement rule's rounding term (``harness.spec.tolerance``).

Two implementations of the same maths differ by their roundings: a few ulps per operation, which
the rule's fixed terms cover as long as the computation does not amplify them. Some do, by orders
of magnitude: ``1 - a`` of a saturated sigmoid (a = 1 - 2e-9: an ulp of ``a`` is a relative error
of 1e-7 in the derivative), or a trajectory whose steps amplify a perturbation (SGD with Nesterov
momentum at lr 1 through tanh: float64's ulps grow past 1e-12 in 20 steps). Neither is a defect;
both are properties of the scenario's arithmetic, and both can be measured without knowing which.

The measure: the reference's run made again ``RUNS`` times in its own dtype with every
floating-point result of every NumPy operation (``ufunc``: matmul, exp, +, sum, sqrt, ...) moved one
ulp up or down at random (``Jittered``; exact results of order-free operations such as max, abs,
negation and an exact zero are left as they are). Half the runs draw new directions at every step
(rounding as noise, which a chaotic trajectory amplifies); the other half repeat the same directions
at every step (``_SameEveryStep``): an implementation's rounding is a deterministic function of its
inputs, so where they change little from step to step it errs the same way every step, and its
difference grows with the steps, not with their square root. A rounding error is at most half an ulp, so each
jittered run is the reference computed with roundings twice as large as any IEEE operation makes,
through its own formulas, in its own dtype; the largest distance of the jittered runs from the
plain run, per quantity (the loss, each parameter, each layer's outputs) and step, is
``rounding_error``: what rounding alone can do to that quantity there. It is the same code path in
the same dtype, so a defect computes the same in every run and adds nothing to it (a defect in the
reference that made its own arithmetic ill-conditioned would show here as a large measure, not as a
pass: the pairs of the two other implementations still have to agree).

The measure is a sample: its largest distance is a lower estimate of rounding's reach, close to it
where nothing amplifies rounding, and short of it where the run amplifies it (a chaotic or exploding
trajectory: SGD with Nesterov momentum 0.99 at lr 0.5, seed 12's example 16 of the fuzzer, whose
keras run is 1.08 x its allowance from the reference's at step 7 with 4 runs, 0.31 x with 64). So
the comparison measures it again over ``MORE_RUNS`` runs where a pair still disagrees and ``R`` is
at least half its allowance at the first element that broke it (``harness.judge.compare``): R decides
that verdict, so it is measured well. A defect that computes other numbers is beyond rounding's
reach, however many runs measure it.

The random directions come from a generator seeded per run: the measure is the same bytes on every
machine that computes the reference's plain run the same way.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any, Iterator

import numpy as np
import numpy.typing as npt

from harness.judge.arithmetic import Arithmetic
from harness.run.adapters.numpy_reference import NumpyReference
from harness.run.plan import TrainingPlan
from harness.run.trajectory import Trajectory

RUNS = 4  # jittered runs; the measure is the largest distance of any from the plain run
# where the pair still disagrees with R counted and R is at least the larger part of its allowance there,
# the measure is made again over this many runs (the first ``RUNS`` of them the same): the largest of 4
# samples underestimates rounding's reach in a run that amplifies it, where 64 of them do not (module docstring)
MORE_RUNS = 64
SEED = 20261206
# Operations whose result is exact whatever the order (a selection, a sign): never jittered.
EXACT = {np.maximum, np.minimum, np.fmax, np.fmin, np.negative, np.positive, np.absolute, np.sign,
         np.floor, np.ceil, np.trunc, np.rint, np.copysign}

_rng: list[np.random.Generator] = []


def _jitter(value: Any) -> Any:
    """``value`` (an array or a scalar) moved one ulp up or down at random where it is a finite,
    non-zero floating-point number."""
    array = np.asarray(value)
    if array.dtype.kind != "f" or not _rng or array.size == 0:  # not a floating-point number
        return value
    up = _rng[-1].random(array.shape) < 0.5
    infinity = array.dtype.type(np.inf)
    moved = np.nextafter(array, np.where(up, infinity, -infinity))  # each toward its own side, in one pass
    out = np.where((array == 0) | ~np.isfinite(array), array, moved)
    if isinstance(value, np.ndarray) and value.ndim:
        return out
    return out[()]


class Jittered(Arithmetic):
    """A NumPy array whose every floating-point ufunc result is moved by one ulp at random
    (``_jitter``), and stays a ``Jittered`` array, so the whole computation that starts from it is."""

    @classmethod
    def result(cls, value: Any, ufunc: np.ufunc, method: str) -> Any:
        value = super().result(value, ufunc, method)  # the arithmetic jittered (``jittered_in``): IEEE's by default
        exact = ufunc in EXACT or method not in ("__call__", "reduce", "accumulate")
        return value if exact else _jitter(value)


_JITTERED: dict[str, type[Jittered]] = {}


def jittered_in(arithmetic: type[Arithmetic]) -> type[Jittered]:
    """``Jittered`` over another arithmetic (its arguments as it reads them, its results as it writes
    them, then moved one ulp): the rounding of a reference computed that way (``harness.judge.causes.subnormals``)."""
    key = f"{arithmetic.__module__}.{arithmetic.__qualname__}"
    if arithmetic is Arithmetic:
        return Jittered
    if key not in _JITTERED:
        _JITTERED[key] = type(f"Jittered{arithmetic.__name__}", (Jittered, arithmetic), {})
    return _JITTERED[key]


@contextmanager
def _jittering(seed: int) -> Iterator[None]:
    _rng.append(np.random.default_rng(seed))
    try:
        yield
    finally:
        _rng.pop()


@dataclass(frozen=True)
class _SameEveryStep(TrainingPlan):
    """A plan whose ``batch`` (called once at the start of every step of the reference's run)
    restarts the jitter's generator: every step moves the same operations' results the same way."""

    seed: int = 0

    def batch(self, step: int, *, full: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        _rng[-1] = np.random.default_rng(self.seed)
        return super().batch(step, full=full)


def _jittered_plan(plan: TrainingPlan, seed: int, *, systematic: bool,
                   arithmetic: type[Arithmetic] = Arithmetic) -> TrainingPlan:
    jittered = jittered_in(arithmetic).plan(plan)
    if not systematic:
        return jittered
    return _SameEveryStep(**{f.name: getattr(jittered, f.name) for f in fields(jittered)}, seed=seed)


Errors = dict[str, npt.NDArray[np.float64]]


def rounding_error(plan: TrainingPlan, runs: int = RUNS, arithmetic: type[Arithmetic] = Arithmetic) -> Errors:
    """The reference's rounding error on ``plan`` (module docstring), by quantity as ``compare``
    names them: ``loss`` and each parameter, per step (the largest over the quantity's elements and
    the steps so far, so a difference crossing zero keeps what it had reached, as ``M`` does), and
    each ``output layers.<i> (start|end)``, one number. ``inf`` where a jittered run leaves the
    finite numbers and the plain one does not, or stops at another step: rounding decides there,
    and nothing after it can be told from rounding. ``arithmetic``: the reference computed in another
    arithmetic (``harness.judge.arithmetic``), plain and jittered."""
    reference = NumpyReference()
    with np.errstate(all="ignore"):
        plain = reference.run(plan if arithmetic is Arithmetic else arithmetic.plan(plan))
        jittered = []
        for i in range(runs):
            with _jittering(SEED + i):
                jittered.append(reference.run(_jittered_plan(plan, SEED + i, systematic=i % 2 == 1,
                                                             arithmetic=arithmetic)))
    return _errors(plain, jittered)


def _errors(plain: Trajectory, jittered: list[Trajectory]) -> Errors:
    n = plain.steps
    out: Errors = {}
    series = {"loss": (plain.losses, [j.losses for j in jittered])}
    series.update({name: (values, [j.params[name] for j in jittered]) for name, values in plain.params.items()})
    for name, (values, others) in series.items():
        per_step = np.zeros(n)
        for other in others:
            m = min(n, other.shape[0])
            per_step[:m] = np.maximum(per_step[:m], _largest(values[:m], other[:m], per_step=True))
            per_step[m:] = np.inf  # the jittered run stopped earlier: rounding decides the early stop
        out[name] = np.maximum.accumulate(per_step) if n else per_step
    for moment, outputs in (("start", "outputs_initial"), ("end", "outputs_final")):
        for i, values in enumerate(getattr(plain, outputs)):
            worst = max((float(_largest(values, getattr(other, outputs)[i], per_step=False)) for other in jittered),
                        default=0.0)
            out[f"output layers.{i} ({moment})"] = np.asarray(worst)
    return out


def _largest(plain: npt.ArrayLike, other: npt.ArrayLike, *, per_step: bool) -> npt.NDArray[np.float64]:
    """The largest ``|plain - other|`` (per step along axis 0 with ``per_step``, else over all), inf
    where ``other`` left the finite numbers and ``plain`` did not (where both did, nothing is
    measured: 0)."""
    a, b = np.asarray(plain, dtype=np.float64), np.asarray(other, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(a - b)
    d = np.where(np.isfinite(a) & ~np.isfinite(d), np.inf, np.where(np.isfinite(d), d, 0.0))
    if per_step:  # (a forward-only run has no steps: nothing per step)
        return np.asarray(d.reshape(d.shape[0], -1).max(axis=1, initial=0.0) if d.shape[0] else np.zeros(0),
                          dtype=np.float64)
    return np.asarray(d.max(initial=0.0), dtype=np.float64)
