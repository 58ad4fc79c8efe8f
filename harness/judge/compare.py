"""Step-by-step comparison of two trajectories of the same scenario and dtype.

Element by element, the agreement rule of ``harness.spec.tolerance``::

    |a - b| <= atol + rtol * max(|a|, |b|) + ulps * eps * M

(``M``: the largest magnitude the quantity reached up to that step, on either side) with
nan == nan and inf == inf of the same sign counted as equal (a diverging
run that reaches nan/inf in both implementations at the same step agrees).
The loss, every parameter (after each update) and every layer's outputs on the
whole data set (with the initial and with the final parameters) decide the
verdict; gradients are measured and reported alongside. A forward-only scenario
is compared on its outputs alone. The same pass keeps, per common step, the
largest difference and the largest fraction of the tolerance used, and the step
where the pair comes closest to disagreeing (the report's plots, growth lines and
drift diagnosis read them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from harness.judge.rounding import MORE_RUNS, RUNS
from harness.run.trajectory import Trajectory
from harness.spec.tolerance import (
    ROUNDING_DECIDES,
    ROUNDING_FACTOR,
    ElementDiffs,
    Tolerance,
    compare_elements,
    magnitude_so_far,
)

# The three states of a compared pair, used word for word in the agreement table, the report's
# verdict and index, the terminal and the JSON.
AGREE = "agree"  # within tolerance at every step
# differs only by what the reference accounts for (a convention, a dtype rule, a framework property:
# ``harness.judge.explain``)
EXPLAINED = "differ, explained"
# what a pair that differs, explained, rests on (``harness.judge.explain``): every way a side is accounted for
ACCOUNTED = ("each side agrees with the reference run in its own optimizer convention, or differs from it only by "
             "a property of its framework, measured without running the framework's code; where a side's "
             "framework has a dtype rule, its control run with that rule off may do so instead; and each "
             "convention's reference run follows that convention's update rule, computed independently in exact "
             "arithmetic")
DISAGREE = "disagree"
STATES = (AGREE, EXPLAINED, DISAGREE)


def worst_state(states: Iterable[str]) -> str:
    """The worst of some pair states (``agree`` when there are none)."""
    return max(states, key=STATES.index, default=AGREE)


@dataclass
class Mismatch:
    """The first element that broke the tolerance."""

    quantity: str
    step: int
    index: tuple[int, ...]
    a: float
    b: float
    diff: float
    allowed: float
    magnitude: float = 0.0  # M: the quantity's largest |value| up to that step (the tolerance's ulps term)


@dataclass
class QuantityDiff:
    quantity: str
    max_abs: float
    max_rel: float
    first_bad_step: int | None
    magnitude: float = 0.0  # M over the whole comparison: the quantity's largest finite |value|


@dataclass
class Comparison:
    a: str
    b: str
    dtype: str
    rtol: float
    atol: float
    steps_a: int
    steps_b: int
    max_abs: float
    max_rel: float
    first_divergent_step: int | None
    agree: bool
    # Per common step, over the loss, every parameter and the layer outputs (those with the initial
    # parameters count at step 0, with the final ones at the last common step): max |a - b|, and
    # max |a - b| / allowed, the fraction of the tolerance used (> 1 disagrees). Empty without steps.
    step_max_abs: np.ndarray
    step_used: np.ndarray
    # (step, quantity, fraction of the tolerance used) where the pair comes closest to disagreeing
    # (a forward-only pair: its outputs at step 0); None when nothing was compared.
    closest: tuple[int, str, float] | None
    quantities: dict[str, QuantityDiff] = field(default_factory=dict)
    gradients: dict[str, QuantityDiff] = field(default_factory=dict)
    mismatch: Mismatch | None = None
    note: str = ""
    # Set by the judge (``harness.judge.explain``): what the pair's sides are known to compute
    # differently, each a phrase: their optimizer conventions ("Adam epsilon placement (...)"), a
    # side's dtype rule ("keras@jax: Keras' rule that returns 32-bit results ... (in ...)")
    differences: list[str] = field(default_factory=list)
    explained: bool = False  # each side agrees with the reference in its convention (or its control run does)
    unconfirmed: str = ""  # why the known difference could not be confirmed (the reference did not run)
    # Set by the judge (``harness.judge.explain``): what makes a side not a run of the pair's dtype,
    # whatever the numbers say
    # ("torch (float32) computed its parameters in float64"): the pair disagrees
    # (``ScenarioResult.dtype_faults``)
    faults: list[str] = field(default_factory=list)
    # The tolerance's magnitude term (harness.spec.tolerance): allowed += mtol * M, mtol = ulps * eps.
    ulps: float = 0.0
    mtol: float = 0.0
    tolerance: str = ""  # Tolerance.describe(): "rtol 1e-05, atol 1e-07 + 16 eps32 x M"
    # The rule's measured rounding term (``harness.judge.rounding``), when the fixed terms rejected the
    # pair: its largest finite R, and whether rounding decides where the pair first disagrees (R
    # infinite there: a jittered reference run left the finite numbers or stopped at another step;
    # or at least ``ROUNDING_DECIDES`` of a quantity's magnitude: ``rounding_decides_from``).
    rounding: float = 0.0
    rounding_decides: bool = False

    @property
    def pair(self) -> str:
        return f"{self.a}-{self.b}"

    @property
    def expected_difference(self) -> str:
        """``differences`` in one phrase ("" when none)."""
        return "; ".join(self.differences)

    @property
    def ok(self) -> bool:
        """Both sides are runs of the pair's dtype (no ``faults``) and the pair agrees, or differs only
        by what the reference accounts for (``differences``, ``explained``)."""
        return not self.faults and (self.agree or (bool(self.expected_difference) and self.explained))

    @property
    def state(self) -> str:
        """The pair's one state (``STATES``): ``agree`` (within tolerance at every step), ``differ,
        explained`` (differs only by ``differences``, which the reference accounts for) or ``disagree``."""
        if self.faults:
            return DISAGREE
        if self.agree:
            return AGREE
        return EXPLAINED if self.ok else DISAGREE

    @property
    def verdict(self) -> str:
        """The state, with what explains the difference (or what it goes beyond)."""
        if self.faults:
            return f"{DISAGREE}: {'; '.join(self.faults)}"
        if self.state == EXPLAINED:
            return f"{EXPLAINED}: {self.expected_difference}"
        if self.state == DISAGREE and self.expected_difference and self.unconfirmed:
            return f"{DISAGREE}: the known difference ({self.expected_difference}) is not confirmed: {self.unconfirmed}"
        if self.state == DISAGREE and self.expected_difference:
            return f"{DISAGREE}: beyond the known difference ({self.expected_difference})"
        return self.state

    def describe_failure(self, scenario: str) -> str:
        """A parity failure message in the style of numpy.testing.assert_allclose."""
        head = f"{scenario}: {self.a} vs {self.b} ({self.dtype}) disagree"
        if self.faults:  # not a run of its dtype, whether or not its values are within the tolerance
            head += f" ({'; '.join(self.faults)})"
            if self.mismatch is None:
                return f"{head}: within the tolerance at every step, and still not a {self.dtype} pair"
        if self.mismatch is None:
            return f"{head}: {self.note}"
        m = self.mismatch
        last_ok = "none" if m.step == 0 else str(m.step - 1)
        scaled = f" + {self.mtol:.3g} x M, M = {m.magnitude:.3g}" if self.mtol else ""
        return (f"{head} at step {m.step}, {m.quantity}{list(m.index) if m.index else ''}: "
                f"{self.a}={m.a!r} {self.b}={m.b!r} |diff|={m.diff:.3e} > allowed {m.allowed:.3e} "
                f"(rtol={self.rtol:g}, atol={self.atol:g}{scaled}); last step that agreed: {last_ok}. "
                f"{self.note}".rstrip())

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a, "b": self.b, "dtype": self.dtype, "max_abs": self.max_abs, "max_rel": self.max_rel,
            "first_divergent_step": self.first_divergent_step, "rtol": self.rtol, "atol": self.atol,
            "ulps": self.ulps, "mtol": self.mtol, "tolerance": self.tolerance, "rounding": self.rounding,
            "rounding_decides": self.rounding_decides,
            "state": self.state, "agree": self.agree, "ok": self.ok, "steps_a": self.steps_a, "steps_b": self.steps_b,
            "per_quantity": {k: {"max_abs": q.max_abs, "max_rel": q.max_rel, "first_bad_step": q.first_bad_step,
                                 "magnitude": q.magnitude}
                             for k, q in self.quantities.items()},
            "gradients": {k: {"max_abs": q.max_abs, "max_rel": q.max_rel} for k, q in self.gradients.items()},
            "mismatch": None if self.mismatch is None else self.mismatch.__dict__,
            "note": self.note, "expected_difference": self.expected_difference, "differences": self.differences,
            "explained": self.explained, "faults": self.faults,
            "verdict": self.verdict,
        }


def _measure(name: str, a: np.ndarray, b: np.ndarray, tol: Tolerance,
             rounding: np.ndarray | None = None) -> tuple[QuantityDiff, Mismatch | None, ElementDiffs]:
    """One quantity over its steps (axis 0): its maxima, its first mismatch and the per-element differences,
    each step judged with ``M`` = the quantity's largest magnitude up to that step (and ``R``, the
    measured rounding error per step, when given)."""
    magnitude = magnitude_so_far(a, b)
    if rounding is not None and a.ndim:
        rounding = np.asarray(rounding, dtype=np.float64)
        if rounding.ndim:  # per step: as many as compared, the last one carried on
            n = a.shape[0]
            rounding = np.concatenate([rounding[:n], np.repeat(rounding[-1:], max(0, n - rounding.shape[0]))])
            rounding = rounding.reshape((-1,) + (1,) * (a.ndim - 1))
    e = compare_elements(a, b, tol, magnitude=magnitude, rounding=rounding)
    max_abs = float(e.diff.max()) if e.diff.size else 0.0
    max_rel = float(e.rel.max()) if e.rel.size else 0.0
    largest = float(magnitude.max(initial=0.0))
    bad = e.bad
    if not bad.any():
        return QuantityDiff(name, max_abs, max_rel, None, largest), None, e
    flat = np.flatnonzero(bad.reshape(-1))[0]  # row-major: the earliest step comes first
    where = np.unravel_index(flat, bad.shape)
    step, index = int(where[0]), tuple(int(i) for i in where[1:])
    mismatch = Mismatch(quantity=name, step=step, index=index, a=float(a[where]), b=float(b[where]),
                        diff=float(e.diff[where]), allowed=float(e.allowed[where]),
                        magnitude=float(magnitude.reshape(-1)[step] if magnitude.ndim else magnitude))
    return QuantityDiff(name, max_abs, max_rel, step, largest), mismatch, e


def _step_maxima(e: ElementDiffs) -> tuple[np.ndarray, np.ndarray]:
    """Per step (axis 0): max |a - b| and max |a - b| / allowed."""
    rows = e.diff.shape[0]
    return (e.diff.reshape(rows, -1).max(axis=1, initial=0.0),
            e.used.reshape(rows, -1).max(axis=1, initial=0.0))


def output_name(layer: int, moment: str) -> str:
    """``output layers.<i> (start|end)``: a layer's activations on the whole data set."""
    return f"output layers.{layer} ({moment})"


def compare(ta: Trajectory, tb: Trajectory, tol: Tolerance, *,
            rounding: Callable[[int], Mapping[str, np.ndarray]] | None = None) -> Comparison:
    """Compare two successful runs over their common steps; a different step count disagrees.
    ``rounding``: makes the measured rounding error of each quantity over that many jittered runs
    (``harness.judge.rounding``, the rule's ``R`` term), called only when the fixed terms reject the
    pair (``R`` can only widen the allowance, so a pair they accept agrees either way); with
    ``RUNS`` runs first, and with ``MORE_RUNS`` where the pair still disagrees and ``R`` is at least
    half the allowance at its first mismatch (``rounding_decides_verdict``)."""
    c = _compare(ta, tb, tol, {})
    if c.agree or rounding is None:
        return c
    measured = dict(rounding(RUNS))
    with_rounding = _compare(ta, tb, tol, measured)
    if rounding_decides_verdict(with_rounding, measured):
        measured = dict(rounding(MORE_RUNS))
        with_rounding = _compare(ta, tb, tol, measured)
    with_rounding.rounding = max((float(np.max(np.where(np.isfinite(r), r, 0.0), initial=0.0))
                                  for r in measured.values()), default=0.0)
    decided = rounding_decides_from(ta, tb, measured)
    m = with_rounding.mismatch
    with_rounding.rounding_decides = m is not None and decided is not None and m.step >= decided
    with_rounding.tolerance += f" + {ROUNDING_FACTOR:g} R (R: rounding measured, up to {with_rounding.rounding:.2g})"
    return with_rounding


def stop_within_rule(ta: Trajectory, tb: Trajectory, tol: Tolerance, early_stop_tol: float | None,
                     rounding: np.ndarray | None = None) -> bool:
    """The runs part only where one stops early and the other does not, and the other's loss change at
    that step (``|loss_k - loss_(k-1)|``) is within the early stop's tolerance plus twice the agreement
    rule's allowance for the loss there: each loss may differ from another implementation's by that
    allowance, so whether the change falls under the early stop's tolerance is decided by rounding,
    below what the rule resolves (float32 near 1.5: changes of 0 or one ulp, 1.2e-7, against 1e-8).
    ``rounding``: the loss's measured rounding per step (``R``), when the pair's comparison counted it; where
    it is infinite at the stop, a jittered reference run stopped elsewhere (or left the finite numbers): rounding
    decides the stop itself."""
    if early_stop_tol is None or ta.steps == tb.steps:
        return False
    stopper, other = (ta, tb) if ta.steps < tb.steps else (tb, ta)
    k = stopper.steps
    if stopper.stopped_early_at != k or k == 0 or other.losses.shape[0] <= k:
        return False
    now, before = float(other.losses[k]), float(other.losses[k - 1])
    if not (np.isfinite(now) and np.isfinite(before)):
        return False
    losses = np.abs(np.concatenate([np.asarray(stopper.losses[:k], dtype=np.float64),
                                    np.asarray(other.losses[:k + 1], dtype=np.float64)]))
    r = None if rounding is None or rounding.size == 0 else np.array([rounding[min(k, rounding.size - 1)]])
    if r is not None and not np.isfinite(r[0]):
        return True  # a jittered reference run stops at another step there: rounding decides the stop itself
    allowed = float(compare_elements(np.array([now]), np.array([now]), tol, rounding=r,
                                     magnitude=np.array(losses[np.isfinite(losses)].max(initial=0.0))).allowed[0])
    return abs(now - before) <= early_stop_tol + 2 * allowed


def rounding_decides_verdict(c: Comparison, rounding: Mapping[str, np.ndarray]) -> bool:
    """The pair disagrees, and at its first mismatch the measured rounding term is at least half of the
    allowance: the verdict rests on how well ``R`` was measured."""
    m = c.mismatch
    if c.agree or m is None or m.quantity not in rounding:
        return False
    r = np.asarray(rounding[m.quantity], dtype=np.float64).reshape(-1)
    at = float(r[min(m.step, r.size - 1)]) if r.size else 0.0
    return bool(np.isfinite(at) and ROUNDING_FACTOR * at >= 0.5 * m.allowed)


def rounding_decides_from(ta: Trajectory, tb: Trajectory, rounding: Mapping[str, np.ndarray]) -> int | None:
    """The first step from which rounding decides the runs (None: never): where the measured rounding
    of the loss or of a parameter is infinite, or reaches ``ROUNDING_DECIDES`` of that quantity's
    magnitude so far. The quantities of a step are coupled (each step computes from all of them), so
    from there on no quantity's difference can be told from rounding."""
    n = min(ta.steps, tb.steps)
    first = None
    for name in ["loss", *ta.params]:
        r = np.asarray(rounding.get(name, np.zeros(0)), dtype=np.float64).reshape(-1)[:n]
        a = ta.losses[:n] if name == "loss" else ta.params[name][:n]
        b = tb.losses[:n] if name == "loss" else tb.params[name][:n]
        if r.size == 0 or name not in ("loss", *tb.params):
            continue
        m = magnitude_so_far(a, b).reshape(-1)[:r.size]
        steps = np.flatnonzero(~np.isfinite(r) | ((r >= ROUNDING_DECIDES * m) & (m > 0)))
        if steps.size and (first is None or steps[0] < first):
            first = int(steps[0])
    return first


def _compare(ta: Trajectory, tb: Trajectory, tol: Tolerance, rounding: Mapping[str, np.ndarray]) -> Comparison:
    n = min(ta.steps, tb.steps)
    quantities = {}
    if n:  # a forward-only scenario (or a run stopped before its first update) has no steps
        quantities["loss"] = (ta.losses[:n], tb.losses[:n])
        for name in ta.params:
            quantities[name] = (ta.params[name][:n], tb.params[name][:n])
    measured, first, closest = {}, None, None
    step_max_abs, step_used = np.zeros(n), np.zeros(n)
    for name, (a, b) in quantities.items():
        q, mismatch, e = _measure(name, a, b, tol, rounding.get(name))
        measured[name] = q
        if mismatch is not None and (first is None or mismatch.step < first.step):
            first = mismatch
        diff, used = _step_maxima(e)
        step_max_abs, step_used = np.maximum(step_max_abs, diff), np.maximum(step_used, used)
        if closest is None or used.max() > closest[2]:
            closest = (int(np.argmax(used)), name, float(used.max()))
    # Outputs with the initial parameters belong to step 0, with the final ones to the last step.
    moments = (("start", ta.outputs_initial, tb.outputs_initial, 0),
               ("end", ta.outputs_final, tb.outputs_final, max(n - 1, 0)))
    for moment, outs_a, outs_b, step in moments:
        if moment == "end" and n == 0:
            continue  # forward-only: the end is the start
        for i, (a, b) in enumerate(zip(outs_a, outs_b)):
            name = output_name(i, moment)
            r = rounding.get(name)
            q, mismatch, e = _measure(name, a[None], b[None], tol,  # one step: never a (steps x elements) array
                                      None if r is None else np.asarray(r).reshape(-1)[:1])
            measured[name] = QuantityDiff(name, q.max_abs, q.max_rel, None if mismatch is None else step,
                                          q.magnitude)
            # with different step counts the final outputs come from different steps' parameters:
            # measured, never a mismatch at a common step (the runs' first difference is the step count)
            if mismatch is not None and (moment == "start" or ta.steps == tb.steps):
                mismatch.step = step
                if first is None or step < first.step:
                    first = mismatch
            (diff,), (used,) = _step_maxima(e)
            if n:
                step_max_abs[step], step_used[step] = max(step_max_abs[step], diff), max(step_used[step], used)
            if closest is None or used > closest[2]:
                closest = (step, name, float(used))
    gradients = {name: _measure(name, ta.grads[name][:n], tb.grads[name][:n], tol)[0] for name in ta.grads}
    note = ""
    first_step = None if first is None else first.step
    if ta.steps != tb.steps:
        note = (f"{ta.framework} made {ta.steps} steps, {tb.framework} made {tb.steps} "
                f"(early stop at different steps)")
        first_step = n if first_step is None else min(first_step, n)
    return Comparison(
        a=ta.framework, b=tb.framework, dtype=ta.dtype, rtol=tol.rtol, atol=tol.atol,
        steps_a=ta.steps, steps_b=tb.steps,
        max_abs=max((q.max_abs for q in measured.values()), default=0.0),
        max_rel=max((q.max_rel for q in measured.values()), default=0.0),
        first_divergent_step=first_step, agree=first_step is None,
        step_max_abs=step_max_abs, step_used=step_used, closest=closest,
        quantities=measured, gradients=gradients, mismatch=first, note=note,
        ulps=tol.ulps, mtol=tol.mtol, tolerance=tol.describe(),
    )
