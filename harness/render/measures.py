"""The numbers every account of a scenario quotes, computed once from the judge's own measures
(``Comparison.closest``, ``step_max_abs`` and the agreement rule's ``difference``), never recomputed
another way: how much of its tolerance a pair uses, the worst pair, where a pair's difference peaks,
how far apart a pair's final parameters end. The sentences, the index, the pairs table, the terminal
and the JSON all read them here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.judge.compare import EXPLAINED, Comparison
from harness.judge.result import ScenarioResult
from harness.spec.tolerance import compare_elements


def used(c: Comparison) -> float:
    """The largest fraction of its tolerance a pair uses at any step: max |a - b| / allowed, the
    quantity the verdict tests (> 1 is beyond the tolerance); 0 when nothing was compared."""
    return 0.0 if c.closest is None else c.closest[2]


def fraction_text(fraction: float) -> str:
    """``0.025 of the tolerance`` or ``3.1e+07 x the tolerance``: a fraction of the allowed difference."""
    if not math.isfinite(fraction):
        return "beyond the tolerance (inf/nan against a number)"
    return f"{fraction:.2g} of the tolerance" if fraction <= 1 else f"{fraction:.2g} x the tolerance"


@dataclass(frozen=True)
class FinalGap:
    """How far apart a pair's final parameters are, by the agreement rule's difference."""

    max_abs: float
    max_rel: float
    used: float  # of the pair's tolerance
    diverged: bool = False  # both runs end with inf/nan parameters (nan against nan counts as equal)

    def digits(self) -> str:
        """``the same final parameters to 7 significant digits`` (or bit for bit, or both diverged)."""
        if self.diverged:
            return DIVERGED
        if self.max_abs == 0:
            return "identical final parameters, bit for bit"
        if not math.isfinite(self.max_rel) or self.max_rel >= 0.1:
            return "final parameters that differ in their leading digit"
        digits = int(math.floor(-math.log10(self.max_rel)))
        return f"the same final parameters to {digits} significant digit{'' if digits == 1 else 's'}"


def final_gap(result: ScenarioResult, c: Comparison) -> FinalGap | None:
    """The pair's final parameters compared (None for a forward-only scenario or a failed run)."""
    ra, rb = result.runs.get((c.a, c.dtype)), result.runs.get((c.b, c.dtype))
    if not result.scenario.trains or ra is None or rb is None or not (ra.ok and rb.ok):
        return None
    tol = result.scenario.tolerances[c.dtype]
    diffs = [compare_elements(ra.final_params[n], rb.final_params[n], tol) for n in ra.final_params]
    if not diffs:
        return None
    nonfinite = [not all(np.isfinite(v).all() for v in r.final_params.values()) for r in (ra, rb)]
    return FinalGap(max_abs=max(float(np.max(e.diff, initial=0.0)) for e in diffs),
                    max_rel=max(float(np.max(e.rel, initial=0.0)) for e in diffs),
                    used=max(float(np.max(e.used, initial=0.0)) for e in diffs), diverged=all(nonfinite))


DIVERGED = "both diverged (nan)"  # a pair whose two runs end with inf/nan parameters


def explained_gap(result: ScenarioResult, c: Comparison) -> tuple[str, str]:
    """What the cause of a pair that differs, explained, accounts for, and where, as the pairs table
    shows it: ``gap 0.0011; final weights 2.1e-08`` (the largest |a - b| over the run, then at its
    end) or ``both diverged (nan)``, and ``loss, step 333``. Never a fraction of the tolerance: the
    pair is judged through the reference, not by it."""
    p, gap = peak(c), final_gap(result, c)
    where = p.quantity if p.step is None else f"{p.quantity}, step {p.step}"
    if gap is not None and gap.diverged:
        return DIVERGED, where
    return f"gap {p.value:.2g}" + ("" if gap is None else f"; final weights {gap.max_abs:.2g}"), where


@dataclass(frozen=True)
class Peak:
    """Where a pair's absolute difference is largest: the quantity holding it and the step."""

    value: float
    quantity: str
    step: int | None  # None for a forward-only pair


def peak(c: Comparison) -> Peak:
    quantity = max(c.quantities.values(), key=lambda q: q.max_abs, default=None)
    step = int(np.argmax(c.step_max_abs)) if c.step_max_abs.size else None
    return Peak(c.max_abs, "-" if quantity is None else quantity.quantity, step)


def decisive(result: ScenarioResult) -> list[Comparison]:
    """The pairs judged by their own tolerance: all but those that differ, explained (judged
    through the reference, by the pairs that compare each side with it)."""
    return [c for c in result.comparisons if c.state != EXPLAINED]


def worst_pair(result: ScenarioResult) -> Comparison | None:
    """The pair closest to (or farthest beyond) its tolerance, among the decisive pairs."""
    return max(decisive(result), key=used, default=None)


def worst_difference(result: ScenarioResult) -> str:
    """The index's worst difference, in the quantity the verdict tests: |a - b| / allowed."""
    c = worst_pair(result)
    if c is None:
        return "-"
    return f"{used(c):.2g} ({c.pair}, {c.dtype})"
