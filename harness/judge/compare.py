"""Step-by-step comparison of two trajectories of the same scenario and dtype.

Element-wise test, as ``numpy.isclose`` but symmetric in the pair::

    |a - b| <= atol + rtol * max(|a|, |b|)

with nan == nan and inf == inf of the same sign counted as equal (a diverging
run that reaches nan/inf in both implementations at the same step agrees).
The loss, every parameter (after each update) and every layer's outputs on the
whole data set (with the initial and with the final parameters) decide the
verdict; gradients are measured and reported alongside. A forward-only scenario
is compared on its outputs alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.judge.tolerance import Tolerance
from harness.run.trajectory import Trajectory


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


@dataclass
class QuantityDiff:
    quantity: str
    max_abs: float
    max_rel: float
    first_bad_step: int | None


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
    quantities: dict[str, QuantityDiff] = field(default_factory=dict)
    gradients: dict[str, QuantityDiff] = field(default_factory=dict)
    mismatch: Mismatch | None = None
    note: str = ""
    # Set by the runner for a pair whose sides run different optimizer conventions:
    expected_difference: str = ""  # how the conventions differ, e.g. "Adam epsilon placement"
    explained: bool = False  # each side agrees with the reference run in its own convention

    @property
    def pair(self) -> str:
        return f"{self.a}-{self.b}"

    @property
    def ok(self) -> bool:
        """Agrees, or differs only by an optimizer convention that the reference explains."""
        return self.agree or (bool(self.expected_difference) and self.explained)

    @property
    def verdict(self) -> str:
        if self.agree:
            return "agree"
        if self.expected_difference:
            return (f"differs by {self.expected_difference}" if self.explained
                    else f"DISAGREE (beyond the convention difference: {self.expected_difference})")
        return "DISAGREE"

    def describe_failure(self, scenario: str) -> str:
        """A parity failure message in the style of numpy.testing.assert_allclose."""
        head = f"{scenario}: {self.a} vs {self.b} ({self.dtype}) disagree"
        if self.mismatch is None:
            return f"{head}: {self.note}"
        m = self.mismatch
        last_ok = "none" if m.step == 0 else str(m.step - 1)
        return (f"{head} at step {m.step}, {m.quantity}{list(m.index) if m.index else ''}: "
                f"{self.a}={m.a!r} {self.b}={m.b!r} |diff|={m.diff:.3e} > allowed {m.allowed:.3e} "
                f"(rtol={self.rtol:g}, atol={self.atol:g}); last step that agreed: {last_ok}. {self.note}".rstrip())

    def as_dict(self) -> dict:
        return {
            "a": self.a, "b": self.b, "dtype": self.dtype, "max_abs": self.max_abs, "max_rel": self.max_rel,
            "first_divergent_step": self.first_divergent_step, "rtol": self.rtol, "atol": self.atol,
            "agree": self.agree, "steps_a": self.steps_a, "steps_b": self.steps_b,
            "per_quantity": {k: {"max_abs": q.max_abs, "max_rel": q.max_rel, "first_bad_step": q.first_bad_step}
                             for k, q in self.quantities.items()},
            "gradients": {k: {"max_abs": q.max_abs, "max_rel": q.max_rel} for k, q in self.gradients.items()},
            "mismatch": None if self.mismatch is None else self.mismatch.__dict__,
            "note": self.note, "expected_difference": self.expected_difference, "explained": self.explained,
            "verdict": self.verdict,
        }


def _diffs(a: np.ndarray, b: np.ndarray, tol: Tolerance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per element: |a - b| (0 where equal incl. nan/inf), relative difference, and the failure mask."""
    with np.errstate(invalid="ignore", over="ignore"):
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        diff = np.where(same, 0.0, np.abs(a.astype(np.float64) - b.astype(np.float64)))
        diff = np.where(np.isnan(diff), np.inf, diff)  # nan against a number: infinitely far
        scale = np.maximum(np.abs(a), np.abs(b)).astype(np.float64)
        rel = np.where(diff == 0, 0.0, diff / np.where(scale == 0, np.inf, scale))
        rel = np.where((diff > 0) & (scale == 0), np.inf, rel)
        bad = diff > tol.atol + tol.rtol * np.where(np.isfinite(scale), scale, 0.0)
    return diff, rel, bad


def _measure(name: str, a: np.ndarray, b: np.ndarray, tol: Tolerance) -> tuple[QuantityDiff, Mismatch | None]:
    diff, rel, bad = _diffs(a, b, tol)
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float(rel.max()) if rel.size else 0.0
    if not bad.any():
        return QuantityDiff(name, max_abs, max_rel, None), None
    flat = np.flatnonzero(bad.reshape(-1))[0]  # row-major: the earliest step comes first
    where = np.unravel_index(flat, bad.shape)
    step, index = int(where[0]), tuple(int(i) for i in where[1:])
    scale = max(abs(float(a[where])), abs(float(b[where])))
    mismatch = Mismatch(quantity=name, step=step, index=index, a=float(a[where]), b=float(b[where]),
                        diff=float(diff[where]), allowed=tol.atol + tol.rtol * scale)
    return QuantityDiff(name, max_abs, max_rel, step), mismatch


def output_name(layer: int, moment: str) -> str:
    """``output layers.<i> (start|end)``: a layer's activations on the whole data set."""
    return f"output layers.{layer} ({moment})"


def compare(ta: Trajectory, tb: Trajectory, tol: Tolerance) -> Comparison:
    """Compare two successful runs over their common steps; a different step count disagrees."""
    n = min(ta.steps, tb.steps)
    quantities = {}
    if n:  # a forward-only scenario (or a run stopped before its first update) has no steps
        quantities["loss"] = (ta.losses[:n], tb.losses[:n])
        for name in ta.params:
            quantities[name] = (ta.params[name][:n], tb.params[name][:n])
    measured, first = {}, None
    for name, (a, b) in quantities.items():
        q, mismatch = _measure(name, a, b, tol)
        measured[name] = q
        if mismatch is not None and (first is None or mismatch.step < first.step):
            first = mismatch
    # Outputs with the initial parameters belong to step 0, with the final ones to the last step.
    moments = (("start", ta.outputs_initial, tb.outputs_initial, 0),
               ("end", ta.outputs_final, tb.outputs_final, max(n - 1, 0)))
    for moment, outs_a, outs_b, step in moments:
        if moment == "end" and n == 0:
            continue  # forward-only: the end is the start
        for i, (a, b) in enumerate(zip(outs_a, outs_b)):
            name = output_name(i, moment)
            q, mismatch = _measure(name, a[None], b[None], tol)
            measured[name] = QuantityDiff(name, q.max_abs, q.max_rel, None if mismatch is None else step)
            if mismatch is not None:
                mismatch.step = step
                if first is None or step < first.step:
                    first = mismatch
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
        first_divergent_step=first_step, agree=first_step is None, quantities=measured, gradients=gradients,
        mismatch=first, note=note,
    )
