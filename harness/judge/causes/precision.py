"""Measured causes of precision: a side whose own tensors had another dtype than the run's
(``computed_dtype``), and a float64 run whose values at a stage are all exactly float32 numbers
while the other side's are not (``float32_values``: computed in single precision, cast back).
"""
from __future__ import annotations

import numpy as np

from harness.judge.causes.evidence import Evidence, Finding
from harness.run.trajectory import trace_stages


def computed_dtype(e: Evidence) -> Finding | None:
    """A side whose own tensors (parameters, loss, gradients: recorded by its loop) had another
    dtype than the run's."""
    for side, _ in e.sides:
        wrong = {kind: dt for kind, dt in e.runs[side].computed_dtypes.items() if dt != e.dtype}
        if wrong:
            what = ", ".join(f"its {kind} in {dt}" for kind, dt in wrong.items())
            return Finding("computed dtype", side, f"{side} computed {what} in a {e.dtype} run (the dtype of its "
                                                   "own tensors, recorded by its training loop)")
    return None


def float32_values(e: Evidence) -> Finding | None:
    """A float64 run whose values at a traced stage are all exact float32 numbers while the other
    side's are not: computed in single precision and cast back."""
    if e.dtype != "float64" or e.a not in e.traces or e.b not in e.traces:
        return None
    for stage in trace_stages(e.scenarios[e.a]):
        single, double = {}, {}
        for side, _ in e.sides:
            v = np.asarray(e.traces[side].get(stage, np.zeros(0)), dtype=np.float64)
            v = v[np.isfinite(v) & (v != 0)]
            with np.errstate(over="ignore"):
                off = np.abs(v.astype(np.float32).astype(np.float64) - v) / np.abs(v)
            # at least 4 values, all exact float32 numbers; the other side's clearly not (a float64
            # value one rounding away from a short decimal like 0.5 is not evidence of double)
            single[side] = v.size >= 4 and bool(np.all(off == 0))
            double[side] = bool(np.any(off > 1e-12))
        for side, other in e.sides:
            if single[side] and double[other]:
                return Finding("float32 values", side,
                               f"{side}'s `{stage}` at step {e.step} holds only exact float32 numbers, {other}'s "
                               "does not: computed in float32 inside a float64 run")
    return None
