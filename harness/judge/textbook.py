"""Each optimizer convention's update rule written once more, independently of ``reference/``, in
exact decimal arithmetic: the check a convention explanation rests on.

A pair "differs, explained: optimizer convention" only when the reference in each convention is
right, and re-running the reference in the other convention runs the very code being checked, so
it cannot fail. This module checks a reference run against the update rule of its optimizer and
convention, as the frameworks' sources write it (read in the pinned ``keras/src/optimizers/
{sgd,adam,rmsprop}.py``, ``update_step``, Keras 3.15, and ``torch/optim/{sgd,adam,rmsprop}.py``,
``_single_tensor_*``, torch 2.13), applied to the gradients the run recorded, in ``Decimal``
arithmetic with 50 significant digits (so the rule itself adds no rounding a float64 run could
hide behind). It imports nothing from ``reference/``: the rules and the defaults are written here
from those sources, not taken from the code they check.

Keras (``v``, ``m`` start at 0; ``t`` counts from 1). Keras casts SGD's momentum and Adam's betas
in ``beta**t`` to the variable's dtype (``ops.cast(beta, variable.dtype)``), so they are float32
numbers in every float32 run, and in a float64 run of the ``"keras"`` convention too (on
TensorFlow the cast of a Python float goes through float32; ``"keras-unrounded"``, JAX and torch:
exact). It matters beyond an ulp: ``1 - beta**t`` cancels, so beta_2 = 0.999 rounded to float32
(0.99900001287) makes ``1 - beta_2`` 1.3e-5 smaller and Adam's step 6.4e-6 larger, relatively (3.2e-6
on a step of lr 0.5), while the rule with the exact betas would call that a wrong update. The power
itself is computed in a dtype too (Keras: ``ops.power`` in the variable's dtype; torch: ``beta ** step``
in Python doubles), and ``1 - beta**t`` cancels its rounding: half an ulp of ``0.999**3`` in float32
is a relative 6e-6 of ``1 - beta_2**3``, 3e-6 of Adam's step, 27 float32 ulps of a step of 2.3 (found
by the fuzzer, ``tests/scenarios/fuzz-seed3-example7.toml``). So the rule takes each power as a
faithfully rounded number of that dtype, either neighbour of the exact power (the exact power itself
when the dtype holds it, as at t = 1), and the run's update must lie within the tolerance of the
range the rule gives over those neighbours (``Rule.update`` returns its two ends)::

    SGD      v = momentum * v - lr * g;  w += v   (nesterov: w += momentum * v - lr * g)
    Adam     alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
             m += (g - m) * (1 - beta_1);  v += (g*g - v) * (1 - beta_2);  amsgrad: v = vhat = max(vhat, v)
             w -= m * alpha / (sqrt(v) + epsilon)
    RMSprop  v = rho * v + (1 - rho) * g*g;  centered: a = rho * a + (1 - rho) * g, d = v - a*a + eps
             else d = v + eps;  inc = lr * g / sqrt(d);  momentum: buf = momentum * buf + inc, w -= buf
             else w -= inc

torch (``buf`` starts as a copy of the first gradient; dampening 0)::

    SGD      buf = momentum * buf + g;  w -= lr * buf   (nesterov: w -= lr * (g + momentum * buf))
    Adam     m = beta_1 * m + (1 - beta_1) * g;  v = beta_2 * v + (1 - beta_2) * g*g;  amsgrad: v = max
             w -= lr / (1 - beta_1**t) * m / (sqrt(v) / sqrt(1 - beta_2**t) + eps)
    RMSprop  v = rho * v + (1 - rho) * g*g;  centered: a = rho * a + (1 - rho) * g, avg = sqrt(v - a*a) + eps
             else avg = sqrt(v) + eps;  momentum: buf = momentum * buf + g / avg, w -= lr * buf
             else w -= lr * g / avg

Each step is checked from the run's own parameters before it (so a difference never compounds)
with the optimizer state accumulated from the run's recorded gradients; the updated parameters
must match within the scenario's tolerance of the run's dtype, its ``M`` the largest magnitude of
the parameters before and after the update (the agreement rule's rounding floor, of the numbers the
update combines). A run is checked for its first
``MIN_STEPS`` steps, and for more while the elements x steps stay within ``BUDGET``.
"""
from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import Any, Callable, Mapping

import numpy as np

from harness.run.trajectory import Trajectory
from harness.spec.scenario import Scenario
from harness.spec.tolerance import Tolerance, compare_elements, finite_magnitude

CONTEXT = Context(prec=50, traps=[Overflow])
# inf - inf, 0 x inf and x / 0 give NaN and Infinity, as IEEE arithmetic does, where a square held as
# the dtype holds it is inf (``Rule._square``): never an exception
IEEE_LIKE = (InvalidOperation, DivisionByZero)
MIN_STEPS = 3  # always checked (when the run made them and their values are finite)
BUDGET = 6_000  # parameter elements x steps checked beyond MIN_STEPS (about 0.1 s)

# The defaults of each framework's own classes, as their signatures declare them
# (keras.optimizers.SGD/Adam/RMSprop, torch.optim.SGD/Adam/RMSprop; torch's RMSprop ``alpha`` is ``rho``).
KERAS_DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"momentum": 0.0, "nesterov": False},
    "adam": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False},
    "rmsprop": {"rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "centered": False},
}
TORCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"momentum": 0.0, "nesterov": False},
    "adam": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8, "amsgrad": False},
    "rmsprop": {"rho": 0.99, "momentum": 0.0, "epsilon": 1e-8, "centered": False},
}
RULE_NAMES = {"sgd": "SGD", "adam": "Adam", "rmsprop": "RMSprop"}
OWNERS = {"keras": "Keras'", "torch": "torch's"}
SOURCES = {"keras": "keras/src/optimizers/{}.py", "torch": "torch/optim/{}.py"}

Vector = list[Decimal]


def _d(x: float) -> Decimal:
    return Decimal(float(x))


def _sqrt(x: Decimal) -> Decimal:
    return x.sqrt(CONTEXT)


def family(convention: str) -> str:
    """"keras" for both Keras conventions, "torch" for torch's."""
    return "torch" if convention == "torch" else "keras"


@functools.lru_cache(maxsize=8192)
def _power_neighbours(beta: Decimal, t: int, power_dtype: str) -> tuple[Decimal, Decimal]:
    """``Rule._powers``: the same (beta, step, dtype) for every parameter and every pair of a report, so
    computed once. ``beta`` is a non-negative float's value (an option in [0, 1)). The power is first
    bounded by two 40-digit numbers (``_power_bounds``); when both lie strictly between the same two
    numbers of the dtype, so does the power, and those are its neighbours. Otherwise (a number of the
    dtype within the bounds: a power the dtype holds, as ``0.5**t``, or within 1e-38 of one) it is
    decided exactly (``_exact_power_neighbours``). The exact decimal power, 60 (t + 1) digits, made this
    a fifth of a warm report's CPU (and was not exact for a beta of more digits, as 1e-300)."""
    dtype = np.dtype(power_dtype).type
    with contextlib.suppress(ArithmeticError):  # bounds out of Decimal's range: decided exactly
        low, high = (_bracket(bound, dtype) for bound in _power_bounds(beta, t))
        if low is not None and low == high:
            return low
    return _exact_power_neighbours(beta, t, dtype)


_FLOOR, _CEILING = (Context(prec=40, rounding=rounding, traps=[Overflow, InvalidOperation, DivisionByZero])
                    for rounding in (ROUND_FLOOR, ROUND_CEILING))


def _power_bounds(beta: Decimal, t: int) -> tuple[Decimal, Decimal]:
    """Two 40-digit numbers around ``beta**t`` (``beta`` >= 0): the power by squaring, each product
    rounded down in the one and up in the other."""
    low = high = Decimal(1)
    base_low, base_high = _FLOOR.plus(beta), _CEILING.plus(beta)
    while t:
        if t & 1:
            low, high = _FLOOR.multiply(low, base_low), _CEILING.multiply(high, base_high)
        t >>= 1
        if t:
            base_low, base_high = _FLOOR.multiply(base_low, base_low), _CEILING.multiply(base_high, base_high)
    return low, high


def _bracket(x: Decimal, dtype: Any) -> tuple[Decimal, Decimal] | None:
    """The two numbers of ``dtype`` strictly around ``x``; None when ``x`` is one of them, or past
    the dtype's range."""
    near = dtype(float(x))  # float(Decimal) is correctly rounded; to float32 from it, still a neighbour
    if not np.isfinite(near) or _d(near) == x:
        return None
    return _around(near, below=_d(near) < x)


def _around(near: Any, *, below: bool) -> tuple[Decimal, Decimal]:
    """``near``, a neighbour of a number in its dtype (below it or above it), and the dtype's next
    number on the number's other side, as (lower, upper)."""
    other = np.nextafter(near, type(near)(np.inf) if below else type(near)(-np.inf))
    lower, upper = sorted((_d(near), _d(other)))
    return lower, upper


def _exact_power_neighbours(beta: Decimal, t: int, dtype: Any) -> tuple[Decimal, Decimal]:
    """``_power_neighbours`` in integers: ``beta`` is ``n / 2**k``, its power ``n**t * 2**(-k t)``
    exactly; only its leading bits are rounded, and the side of the power a float lies on is a
    comparison of shifted integers."""
    n, d = beta.as_integer_ratio()
    k = d.bit_length() - 1
    if n < 0 or d != 1 << k:
        raise ValueError(f"beta must be a non-negative float's value, not {beta}")
    exact, exponent = n ** t, -k * t  # beta**t == exact * 2**exponent
    shift = max(exact.bit_length() - 64, 0)
    # its 64 leading bits, the last one set when any bit below them is (rounding to 53 bits sees them all)
    leading = exact >> shift | (exact & ((1 << shift) - 1) != 0)
    try:  # the double nearest the power (the dtype's from it: rounded twice, it is still a neighbour)
        near = dtype(math.ldexp(float(leading), exponent + shift))
    except OverflowError:
        near = dtype(np.inf)
    if np.isfinite(near):
        a, b = float(near).as_integer_ratio()  # near == a / b, b == 2**j: compare a * 2**(k t) with exact * b
        side = (a << (k * t)) - exact * b
    else:
        side = 1
    if side == 0:
        return _d(near), _d(near)
    return _around(near, below=side < 0)


class Rule:
    """One optimizer's update rule in one convention: ``update(t, name, w, g)`` -> the new ``w``
    (``t`` counts from 1), keeping its state per parameter name."""

    def __init__(self, name: str, convention: str, learning_rate: float, options: Mapping[str, Any], dtype: str):
        self.name, self.convention, self.family = name, convention, family(convention)
        defaults = (TORCH_DEFAULTS if self.family == "torch" else KERAS_DEFAULTS)[name]
        self.o = {k: options.get(k, v) for k, v in defaults.items()}
        # Keras casts SGD's momentum and Adam's betas (in beta**t) to the variable's dtype: float32 in
        # a float32 run, and through float32 on TensorFlow in a float64 one (module docstring)
        rounded = self.family == "keras" and (dtype == "float32" or convention == "keras")
        self.cast = (lambda x: _d(float(np.float32(x)))) if rounded else _d
        self.lr = _d(learning_rate)
        self.power_dtype = dtype if self.family == "keras" else "float64"  # where ``beta**t`` is computed
        self.dtype = dtype
        self.state: dict[str, dict[str, Vector]] = {}

    def describe(self) -> str:
        source = SOURCES[self.family].format(self.name)
        return f"{OWNERS[self.family]} {RULE_NAMES[self.name]} ({source})"

    def update(self, t: int, name: str, w: Vector, g: Vector) -> tuple[Vector, Vector]:
        """The new ``w`` as the two ends of the range the rule allows (the same vector twice but for
        Adam, whose bias corrections take each power of a beta as either neighbour in its dtype)."""
        state = self.state.setdefault(name, {})
        rule: Callable[[int, dict[str, Vector], Vector, Vector], Vector | tuple[Vector, Vector]] = \
            getattr(self, f"_{self.family}_{self.name}")
        with localcontext(CONTEXT) as context:  # every + and *, not only sqrt, to the 50 digits
            for signal in IEEE_LIKE:
                context.traps[signal] = False
            new = rule(t, state, w, g)
        return new if isinstance(new, tuple) else (new, new)

    def _powers(self, beta: Decimal, t: int) -> tuple[Decimal, Decimal]:
        """``beta**t`` as the framework computes it, a faithfully rounded number of the dtype it computes
        in (Keras: the variable's, torch: Python's double): the two neighbours of the exact power in that
        dtype, (lower, upper), one number when the dtype holds the power exactly (``_power_neighbours``)."""
        return _power_neighbours(beta, t, self.power_dtype)

    def _square(self, g: Decimal) -> Decimal:
        """``g * g``, exact, but inf where the run's dtype cannot hold it (past its largest number): in
        float32 a gradient of 5.8e25 squares to inf, so RMSprop's ``v`` is inf and the step 0, where the
        exact square gave a full step of ``lr / sqrt(1 - rho)`` (the fuzzer's seed-12 example 2215). An
        underflowing square stays exact: its rounding is absolute and tiny, and the other terms beside it
        (a centered RMSprop's ``a * a``) are exact too."""
        kind = np.dtype(self.dtype).type
        with np.errstate(over="ignore"):
            held = kind(float(g)) * kind(float(g))
        return _d(held) if np.isinf(held) else g * g

    # --- Keras ---------------------------------------------------------------------------

    def _keras_sgd(self, t: int, s: dict[str, Vector], w: Vector, g: Vector) -> Vector:
        mu, lr = self.cast(self.o["momentum"]), self.lr
        if not self.o["momentum"]:
            return [wi - lr * gi for wi, gi in zip(w, g)]
        v = s.setdefault("v", [Decimal(0)] * len(w))
        v[:] = [mu * vi - lr * gi for vi, gi in zip(v, g)]
        if self.o["nesterov"]:
            return [wi + mu * vi - lr * gi for wi, vi, gi in zip(w, v, g)]
        return [wi + vi for wi, vi in zip(w, v)]

    def _keras_adam(self, t: int, s: dict[str, Vector], w: Vector, g: Vector) -> tuple[Vector, Vector]:
        b1, b2, eps = _d(self.o["beta_1"]), _d(self.o["beta_2"]), _d(self.o["epsilon"])
        # alpha grows with beta_1**t and falls with beta_2**t: its ends over the powers' neighbours
        (p1_low, p1_high), (p2_low, p2_high) = (self._powers(self.cast(self.o[k]), t) for k in ("beta_1", "beta_2"))
        alphas = [self.lr * _sqrt(1 - p2) / (1 - p1) for p1, p2 in ((p1_low, p2_high), (p1_high, p2_low))]
        m = s.setdefault("m", [Decimal(0)] * len(w))
        v = s.setdefault("v", [Decimal(0)] * len(w))
        m[:] = [mi + (gi - mi) * (1 - b1) for mi, gi in zip(m, g)]
        v[:] = [vi + (self._square(gi) - vi) * (1 - b2) for vi, gi in zip(v, g)]
        if self.o["amsgrad"]:
            vhat = s.setdefault("vhat", [Decimal(0)] * len(w))
            vhat[:] = [max(a, b) for a, b in zip(vhat, v)]
            v = vhat
        low, high = ([wi - mi * alpha / (_sqrt(vi) + eps) for wi, mi, vi in zip(w, m, v)] for alpha in alphas)
        return low, high

    def _keras_rmsprop(self, t: int, s: dict[str, Vector], w: Vector, g: Vector) -> Vector:
        rho, eps, mu = _d(self.o["rho"]), _d(self.o["epsilon"]), _d(self.o["momentum"])
        v = s.setdefault("v", [Decimal(0)] * len(w))
        v[:] = [rho * vi + (1 - rho) * self._square(gi) for vi, gi in zip(v, g)]
        if self.o["centered"]:
            a = s.setdefault("a", [Decimal(0)] * len(w))
            a[:] = [rho * ai + (1 - rho) * gi for ai, gi in zip(a, g)]
            denominator = [vi - ai * ai + eps for vi, ai in zip(v, a)]
        else:
            denominator = [vi + eps for vi in v]
        increment = [self.lr * gi / _sqrt(di) for gi, di in zip(g, denominator)]
        if self.o["momentum"]:
            buf = s.setdefault("buf", [Decimal(0)] * len(w))
            buf[:] = [mu * bi + ii for bi, ii in zip(buf, increment)]
            return [wi - bi for wi, bi in zip(w, buf)]
        return [wi - ii for wi, ii in zip(w, increment)]

    # --- torch ---------------------------------------------------------------------------

    def _torch_sgd(self, t: int, s: dict[str, Vector], w: Vector, g: Vector) -> Vector:
        mu, lr = _d(self.o["momentum"]), self.lr
        if not self.o["momentum"]:
            return [wi - lr * gi for wi, gi in zip(w, g)]
        if "buf" not in s:
            s["buf"] = list(g)
        else:
            s["buf"] = [mu * bi + gi for bi, gi in zip(s["buf"], g)]
        buf = s["buf"]
        if self.o["nesterov"]:
            return [wi - lr * (gi + mu * bi) for wi, gi, bi in zip(w, g, buf)]
        return [wi - lr * bi for wi, bi in zip(w, buf)]

    def _torch_adam(self, t: int, s: dict[str, Vector], w: Vector, g: Vector) -> tuple[Vector, Vector]:
        b1, b2, eps = _d(self.o["beta_1"]), _d(self.o["beta_2"]), _d(self.o["epsilon"])
        m = s.setdefault("m", [Decimal(0)] * len(w))
        v = s.setdefault("v", [Decimal(0)] * len(w))
        m[:] = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v[:] = [b2 * vi + (1 - b2) * self._square(gi) for vi, gi in zip(v, g)]
        if self.o["amsgrad"]:
            vmax = s.setdefault("vmax", [Decimal(0)] * len(w))
            vmax[:] = [max(a, b) for a, b in zip(vmax, v)]
            v = vmax
        # the step grows with beta_1**t and falls with beta_2**t: its ends over the powers' neighbours
        (p1_low, p1_high), (p2_low, p2_high) = self._powers(b1, t), self._powers(b2, t)
        low, high = ([wi - self.lr / (1 - p1) * mi / (_sqrt(vi) / _sqrt(1 - p2) + eps) for wi, mi, vi in zip(w, m, v)]
                     for p1, p2 in ((p1_low, p2_high), (p1_high, p2_low)))
        return low, high

    def _torch_rmsprop(self, t: int, s: dict[str, Vector], w: Vector, g: Vector) -> Vector:
        rho, eps, mu = _d(self.o["rho"]), _d(self.o["epsilon"]), _d(self.o["momentum"])
        v = s.setdefault("v", [Decimal(0)] * len(w))
        v[:] = [rho * vi + (1 - rho) * self._square(gi) for vi, gi in zip(v, g)]
        if self.o["centered"]:
            a = s.setdefault("a", [Decimal(0)] * len(w))
            a[:] = [rho * ai + (1 - rho) * gi for ai, gi in zip(a, g)]
            avg = [_sqrt(vi - ai * ai) + eps for vi, ai in zip(v, a)]
        else:
            avg = [_sqrt(vi) + eps for vi in v]
        if self.o["momentum"]:
            buf = s.setdefault("buf", [Decimal(0)] * len(w))
            buf[:] = [mu * bi + gi / ai for bi, gi, ai in zip(buf, g, avg)]
            return [wi - self.lr * bi for wi, bi in zip(w, buf)]
        return [wi - self.lr * gi / ai for wi, gi, ai in zip(w, g, avg)]


@dataclass(frozen=True)
class RuleCheck:
    """A reference run (``label``, e.g. ``numpy[keras]``) against its convention's update rule:
    ``steps`` steps checked; ``bad_step`` the first whose updated parameters the rule does not
    reproduce (None: all checked steps do), with the parameter, index and both values."""

    label: str
    dtype: str
    rule: str  # e.g. "Keras' Adam (keras/src/optimizers/adam.py)"
    steps: int
    bad_step: int | None = None
    quantity: str = ""
    index: tuple[int, ...] = ()
    run_value: float = 0.0
    rule_value: float = 0.0
    largest: float = 0.0  # the largest |run - rule| over the checked steps
    message: str = ""  # why fewer steps were checked than the run made ("" when none)

    @property
    def ok(self) -> bool:
        """The rule reproduces every checked step (and at least one step was checked)."""
        return self.bad_step is None and self.steps > 0

    @property
    def failed(self) -> bool:
        return self.bad_step is not None

    def covers(self, step: int) -> bool:
        """Whether the check decided about ``step`` (it was checked, or an earlier one failed)."""
        return step < self.steps or self.failed

    def describe(self) -> str:
        if self.failed:
            return (f"{self.label}'s update at step {self.bad_step} is not {self.rule} computed independently "
                    f"in exact arithmetic from its own gradients: `updated {self.quantity}`"
                    f"{list(self.index) if self.index else ''} is {self.run_value!r}, the rule gives "
                    f"{self.rule_value!r}")
        if not self.steps:
            return f"{self.label} could not be checked against {self.rule}: {self.message}"
        span = "step 0" if self.steps == 1 else f"steps 0-{self.steps - 1}"
        tail = f" ({self.message})" if self.message else ""
        return (f"{self.label}'s {span} follow {self.rule} computed independently in exact arithmetic "
                f"from its own gradients (largest difference {self.largest:.2g}){tail}")


def check_run(label: str, run: Trajectory, *, optimizer: str, learning_rate: float, options: Mapping[str, Any],
              convention: str, tolerance: Tolerance) -> RuleCheck:
    """``run`` (a reference run computing ``convention``) against that convention's rule."""
    rule = Rule(optimizer, convention, learning_rate, options, run.dtype)
    elements = sum(int(np.prod(v.shape[1:])) for v in run.params.values())
    steps = min(run.steps, max(MIN_STEPS, BUDGET // max(elements, 1)))
    message = "" if steps == run.steps else f"of {run.steps}: the first {steps} within its budget"
    largest = 0.0
    for step in range(steps):
        before = run.params_before(step)
        for name, values in run.params.items():
            w, g, after = before[name], run.grads[name][step], values[step]
            if not (np.isfinite(w).all() and np.isfinite(g).all() and np.isfinite(after).all()):
                return RuleCheck(label, run.dtype, rule.describe(), step, largest=largest,
                                 message=f"step {step} holds inf or nan")
            ends = rule.update(step + 1, name, [_d(x) for x in w.reshape(-1)], [_d(x) for x in g.reshape(-1)])
            low, high = (np.array([float(x) for x in end]).reshape(after.shape) for end in ends)
            # the rule's value nearest the run's within the range it allows (one value but for Adam)
            expected = np.clip(after, np.minimum(low, high), np.maximum(low, high))
            # M: the largest magnitude the update combined (the parameters before it too: a step that
            # nearly cancels a parameter rounds at the ulp of the parameter, not of the result)
            e = compare_elements(after, expected, tolerance,
                                 magnitude=float(finite_magnitude(w, after, expected).max(initial=0.0)))
            largest = max(largest, float(e.diff.max(initial=0.0)))
            if e.bad.any():
                where = np.unravel_index(int(np.flatnonzero(e.bad.reshape(-1))[0]), after.shape)
                return RuleCheck(label, run.dtype, rule.describe(), step + 1, bad_step=step, quantity=name,
                                 index=tuple(int(i) for i in where), run_value=float(after[where]),
                                 rule_value=float(expected[where]), largest=largest)
    return RuleCheck(label, run.dtype, rule.describe(), steps, largest=largest, message=message)


def check_rule(label: str, run: Trajectory, scenario: Scenario, tolerance: Tolerance) -> RuleCheck:
    """A reference run (of ``scenario``) against the update rule of the convention it computed."""
    spec = scenario.training_spec.optimizer
    return check_run(label, run, optimizer=spec.name, learning_rate=spec.learning_rate, options=spec.options,
                     convention=run.convention, tolerance=tolerance)
