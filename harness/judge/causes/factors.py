"""Measured causes of scale: values that are one constant multiple of the other side's
(``constant_factor``: at a stage, on every stage of its kind, or recomputed at the same parameters
over steps t..t+3), and recorded gradients that are the other side's times the declared learning
rate or momentum (``gradient_scaled``: the rate applied to the gradient before the step).
"""
from __future__ import annotations

import numpy as np

from harness.judge.causes.evidence import Evidence, Finding, agree, dtype_eps
from harness.judge.causes.updates import record_is_the_update, sgd_rate
from harness.run.labels import framework_of


def factor(a: np.ndarray, b: np.ndarray, dtype: str) -> tuple[float, int] | None:
    """(r, n): every one of the n compared elements of ``a`` is r x ``b``'s (r not 1), within 64
    ulps; None otherwise, or with fewer than 2 elements to compare (one number is always some
    multiple of another)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    ok = np.isfinite(a) & np.isfinite(b) & (a != 0) & (b != 0)
    if ok.sum() < 2 or np.any(((a == 0) != (b == 0)) & np.isfinite(a) & np.isfinite(b)):
        return None
    ratio = a[ok] / b[ok]
    r, noise = float(np.median(ratio)), 64 * dtype_eps(dtype)
    if np.all(np.abs(ratio - r) <= noise * abs(r)) and abs(r - 1) > 16 * noise:
        return r, int(ok.sum())
    return None


def _compared(a: np.ndarray, b: np.ndarray) -> int:
    """How many elements ``factor`` can compare: finite and non-zero on both sides."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    return int((np.isfinite(a) & np.isfinite(b) & (a != 0) & (b != 0)).sum())


def _same_point(e: Evidence, quantity: str, steps: range) -> tuple[np.ndarray, np.ndarray] | None:
    """``quantity`` (``loss`` or ``gradient <p>``) computed by each side of the pair at the same
    parameters and batch, at each of ``steps``: the parameters a's record holds before the step,
    the plan's batch of the step (``Adapter.gradients``). None when a side cannot compute it."""
    values: dict[str, list[np.ndarray]] = {e.a: [], e.b: []}
    run = e.runs[e.a]
    for k in steps:
        idx = e.plan.batch_indices(k)
        for label in (e.a, e.b):
            try:
                loss, grads = e.run_floor.adapter(framework_of(label)).gradients(
                    e.scenarios[label], run.params_before(k), e.plan.X[idx], e.plan.y[idx])
            except Exception:  # a side that cannot compute it: no measurement
                return None
            value = loss if quantity == "loss" else grads.get(quantity.split(" ", 1)[1])
            if value is None:
                return None
            values[label].append(np.asarray(value, dtype=np.float64).ravel())
    return np.concatenate(values[e.a]), np.concatenate(values[e.b])


FACTOR_STEPS = 4  # the steps a factor on few elements is measured over (t..t+3)


def constant_factor(e: Evidence) -> Finding | None:
    """One side's values are one constant multiple of the other's: at the localised stage of the
    step (at least 3 elements); else on every stage of its kind in the step (every gradient, every
    layer output: at least 3 elements in all); else, for a loss or gradient, recomputed by both
    sides at the same parameters and batch at steps t..t+3 when the stage has fewer than 3
    elements to compare (``_same_point``: a 2-element kernel over 4 steps gives 8 ratios)."""
    ta, tb = e.traces.get(e.a), e.traces.get(e.b)
    stage = e.stage
    if stage is None or ta is None or tb is None or stage not in ta or stage not in tb:
        return None
    found = factor(ta[stage], tb[stage], e.dtype)
    if found is not None and found[1] >= 3:
        r, n = found
        return Finding("constant factor", None,
                       f"`{stage}` of {e.a} is {r:.8g} x {e.b}'s at step {e.step}, the same factor for all "
                       f"{n} elements (a dropped or extra factor, a mean over another count, a scaled function)")
    kind = stage.split(" ", 1)[0]
    stages = [x for x in ta if x.split(" ", 1)[0] == kind and x in tb] if kind in ("gradient", "output") else []
    if len(stages) > 1:
        found = factor(np.concatenate([np.ravel(ta[x]) for x in stages]),
                        np.concatenate([np.ravel(tb[x]) for x in stages]), e.dtype)
        if found is not None and found[1] >= 3:
            r, n = found
            return Finding("constant factor", None,
                           f"every `{kind} ...` of {e.a} ({', '.join(x.split(' ', 1)[1] for x in stages)}) is "
                           f"{r:.8g} x {e.b}'s at step {e.step}, the same factor for all {n} elements (a dropped or "
                           "extra factor, a mean over another count, a scaled function)")
    if kind not in ("gradient", "loss") or e.a not in e.runs or e.scenarios[e.a].training is None \
            or _compared(ta[stage], tb[stage]) >= 3:  # enough elements at the step: its verdict stands
        return None
    steps = range(e.step, min(e.step + FACTOR_STEPS, e.runs[e.a].steps))
    measured = _same_point(e, stage, steps) if len(steps) > 1 else None
    found = None if measured is None else factor(*measured, e.dtype)
    if found is None or found[1] < 3:
        return None
    r, n = found
    return Finding("constant factor", None,
                   f"`{stage}` of {e.a} is {r:.8g} x {e.b}'s computed at the same parameters and batch at steps "
                   f"{steps.start}..{steps.stop - 1} ({e.a}'s parameters before each step), the same factor for all "
                   f"{n} values (a dropped or extra factor, a mean over another count, a scaled function)")


def gradient_scaled(e: Evidence) -> Finding | None:
    """At a step both sides entered with the same parameters, a side whose recorded gradients are
    the other's times the declared learning rate (or momentum), for every element: the rate
    applied to the gradient itself before the step; with the update / recorded gradient ratio
    measured on that scaled record (plain SGD, its premise checked by the replay)."""
    t = e.step
    for side, other in e.sides:
        spec, mine, theirs = e.scenarios[side].training, e.runs[side], e.runs[other]
        names = [p for p in mine.grads if p in theirs.grads]
        if spec is None or not names or t >= min(mine.steps, theirs.steps):
            continue
        if not all(agree(mine.params_before(t)[p], theirs.params_before(t)[p], e.tolerance) for p in names):
            continue
        found = factor(np.concatenate([mine.grads[p][t].ravel() for p in names]),
                        np.concatenate([theirs.grads[p][t].ravel() for p in names]), e.dtype)
        if found is None:
            continue
        r, n = found
        rates = {"learning rate": spec.optimizer.learning_rate,
                 "momentum": float(spec.optimizer.options.get("momentum", 0.0))}
        which = [k for k, v in rates.items() if v and abs(r - v) <= 64 * dtype_eps(e.dtype) * abs(v)]
        if not which:
            continue
        rate = sgd_rate(spec, t)
        then = ""
        if rate is not None and record_is_the_update(e, side):
            update = np.concatenate([(mine.params_before(t)[p] - mine.params[p][t]).ravel() for p in names])
            recorded = np.concatenate([mine.grads[p][t].ravel() for p in names])
            ok = np.abs(recorded) > 0
            if ok.any():
                u = float(np.median(update[ok] / recorded[ok]))
                then = (f"; its update / recorded gradient is {u:.6g}" +
                        (", the declared rate, on the scaled record: the rate is applied twice" if abs(u - rate) <= 64
                         * dtype_eps(e.dtype) * abs(rate) else ""))
        return Finding("rate applied to the gradient", side,
                       f"{side}'s recorded gradients at step {t} are {r:.8g} x {other}'s at the same parameters, for "
                       f"all {n} elements: the declared {' / '.join(which)} {rates[which[0]]:g} applied to the "
                       f"gradient itself before the step{then}")
    return None
