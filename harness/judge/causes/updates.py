"""Measured causes in the update a side applied: SGD whose update / gradient ratio is one constant
other than the declared learning rate (``effective_learning_rate``; with momentum: at step 0), and
plain SGD whose update is -lr (gradient + lambda w) (``weight_decay``).

A measure made on a side's record (update = params[t] - params[t-1]) first checks its premise, that
the record's update is the side's update at the step (``record_is_the_update``: the side's own
replay of the step goes from the one to the other).
"""
from __future__ import annotations

import numpy as np

from harness.judge.causes.evidence import Evidence, Finding, agree, dtype_eps
from harness.spec.scenario import TrainingSpec


def record_is_the_update(e: Evidence, side: str) -> bool:
    """The premise of a measure made on a side's record (update = params[t] - params[t-1]): the
    side's own replay of the step starts from the record's parameters before step t and ends at
    the record's after it. False when the step was not replayed (nothing to check it with) or the
    record holds something else (e.g. its parameters written before the update)."""
    trace, run, t = e.traces.get(side), e.runs[side], e.step
    if trace is None or not run.params or any(len(v) <= t for v in run.params.values()):
        return False
    before = run.params_before(t)
    return all(f"params {p}" in trace and f"updated {p}" in trace
               and agree(trace[f"params {p}"], before[p], e.tolerance)
               and agree(trace[f"updated {p}"], run.params[p][t], e.tolerance) for p in run.params)


def sgd_rate(spec: TrainingSpec | None, step: int) -> float | None:
    """The update / gradient ratio SGD makes at ``step``: the learning rate without momentum, and
    with (heavy-ball) momentum at step 0, where the velocity starts at 0 in both conventions; None
    where the ratio is not the learning rate (later steps with momentum; Nesterov's, whose first
    step carries 1 + momentum, which Keras on TensorFlow rounds to float32 in float64 runs)."""
    if spec is None or spec.optimizer.name != "sgd" or spec.optimizer.options.get("nesterov"):
        return None
    if float(spec.optimizer.options.get("momentum", 0.0)) != 0.0 and step != 0:
        return None
    return spec.optimizer.learning_rate


def effective_learning_rate(e: Evidence) -> Finding | None:
    """SGD: a side whose update / gradient ratio at the step is one constant for every element,
    other than the rate declared (the learning rate; with momentum, at step 0 only, where the
    velocity starts at 0: the learning rate, times 1 + momentum with Nesterov's). Its premise, that
    the record's update is the side's update at the step, is checked by its replay of the step
    (``record_is_the_update``)."""
    t = e.step
    for side, _ in e.sides:
        spec = e.scenarios[side].training
        expected = sgd_rate(spec, t)
        if spec is None or expected is None or not record_is_the_update(e, side):
            continue
        run = e.runs[side]
        before, after = run.params_before(t), {p: v[t] for p, v in run.params.items()}
        ratios, bounds = [], []
        for p in after:
            g = run.grads[p][t].astype(np.float64)
            b0, b1 = before[p].astype(np.float64), after[p].astype(np.float64)
            ok = np.isfinite(g) & (np.abs(g) > 0) & np.isfinite(b0) & np.isfinite(b1)
            ratios.append(((b0 - b1) / np.where(ok, g, 1.0))[ok])
            bounds.append((8 * dtype_eps(e.dtype) * (np.abs(b0) + np.abs(b1)) / np.where(ok, np.abs(g), 1.0))[ok])
        ratio, bound = np.concatenate(ratios), np.concatenate(bounds)
        if ratio.size < 2:
            continue
        lr, declared = float(np.median(ratio)), expected
        slack = bound + 8 * dtype_eps(e.dtype) * abs(lr)
        if not np.all(np.abs(ratio - lr) <= slack) or abs(lr - declared) <= 4 * float(slack.max()):
            continue
        as_f32 = float(np.float32(declared))
        note = "; the declared rate rounded to float32" if abs(lr - as_f32) <= 4 * float(slack.max()) else ""
        momentum = float(spec.optimizer.options.get("momentum", 0.0))
        if momentum and abs(lr - declared * momentum) <= 4 * float(slack.max()):
            note = f"; the momentum {momentum:g} applied to the gradient"
        what = "" if not momentum else " (the rate of the first step, where the velocity is 0)"
        return Finding("effective learning rate", side,
                       f"{side} updated with an effective learning rate {lr:.10g} at step {t} (update / gradient, "
                       f"the same for all {ratio.size} elements) where {declared:g} is declared{what} "
                       f"({lr / declared:.10g} x{note})")
    return None


def weight_decay(e: Evidence) -> Finding | None:
    """Plain SGD: a side whose update at steps t..t+2 is ``-lr (gradient + lambda w)``, one lambda
    for every element and step (an extra term proportional to the weights: weight decay, an L2
    penalty), none being declared. lambda is the least-squares fit of
    ``r = (w_before - w_after) / lr - gradient`` on ``w_before``; every residual must be within the
    rounding of the quantities it is made of, and lambda w clearly beyond it. Its premise, that the
    record's update is the side's (``record_is_the_update``), is checked at step t."""
    t = e.step
    for side, _ in e.sides:
        spec, run = e.scenarios[side].training, e.runs[side]
        if spec is None or spec.optimizer.name != "sgd" or spec.optimizer.options.get("momentum", 0.0) != 0.0:
            continue
        if not record_is_the_update(e, side):
            continue
        lr, eps, steps = spec.optimizer.learning_rate, dtype_eps(e.dtype), range(t, min(t + 3, run.steps))
        r_parts, w_parts, bound_parts = [], [], []
        for k in steps:
            before = run.params_before(k)
            for p in run.params:
                w0, w1 = before[p].astype(np.float64).ravel(), run.params[p][k].astype(np.float64).ravel()
                g = run.grads[p][k].astype(np.float64).ravel()
                r_parts.append((w0 - w1) / lr - g)
                w_parts.append(w0)
                bound_parts.append(8 * eps * ((np.abs(w0) + np.abs(w1)) / lr + np.abs(g)))
        r, w, bound = np.concatenate(r_parts), np.concatenate(w_parts), np.concatenate(bound_parts)
        if not (np.all(np.isfinite(r)) and np.all(np.isfinite(w))) or np.count_nonzero(w) < 2 or not np.any(w):
            continue
        lam = float(np.dot(r, w) / np.dot(w, w))
        residual = np.abs(r - lam * w)
        if np.all(residual <= bound + 8 * eps * np.abs(lam * w)) and float(np.max(np.abs(lam * w))) > 16 * float(
                np.max(bound)):
            return Finding("weight decay", side,
                           f"{side}'s update at steps {steps.start}..{steps.stop - 1} is -lr (gradient + lambda w) "
                           f"with lambda = {lam:.6g}, the same for all {w.size // len(steps)} elements at each of "
                           f"the {len(steps)} steps (lr {lr:g} declared): an extra term proportional to the weights "
                           "(weight decay, an L2 penalty) where none is declared")
    return None
