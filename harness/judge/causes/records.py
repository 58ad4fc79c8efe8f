"""Measured causes in what a side recorded: it did not start from the declared parameters
(``initial_parameters``: the same values in another order, a reshape where a transpose was meant),
a step's batch held other rows than the plan's (``wrong_batch_rows``), its gradients are not reset between
steps (``accumulated_gradients``), or it writes its parameters to the record before its update
(``record_late``).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from harness.judge.causes.evidence import Evidence, Finding, agree, ids
from harness.run.trajectory import RowIds


def initial_parameters(e: Evidence) -> Finding | None:
    """At step 0, a side whose parameters entering the step are not the declared initial ones."""
    if e.step != 0:
        return None
    for side, _ in e.sides:
        trace = e.traces.get(side)
        if trace is None:
            continue
        for name, declared in e.plan.initial_params.items():
            held = trace.get(f"params {name}")
            if held is None or held.shape != declared.shape or agree(held, declared, e.tolerance):
                continue
            if np.array_equal(np.sort(held, axis=None), np.sort(declared, axis=None)):
                how = ("its transpose read in row-major order (a reshape where a transpose was meant)"
                       if held.ndim == 2 and np.array_equal(held, np.ascontiguousarray(declared.T).reshape(held.shape))
                       else "permuted")
                return Finding("initial parameters", side,
                               f"{side} started from `{name}` holding the declared values in another order: {how}")
            return Finding("initial parameters", side, f"{side} did not start from the declared `{name}`")
    return None


def wrong_batch_rows(e: Evidence) -> Finding | None:
    """The first step up to the diagnosed one whose batch held other rows in one side than the
    plan's (compared as multisets of rows identified by content)."""
    canonical = RowIds(e.plan.X).ids(e.plan.X)
    for t in range(e.step + 1):
        held = {side: e.runs[side].batch_rows[t] for side, _ in e.sides if t < len(e.runs[side].batch_rows)}
        if len(held) < 2 or Counter(held[e.a].tolist()) == Counter(held[e.b].tolist()):
            continue
        planned = canonical[e.plan.batch_indices(t)]
        for side, other in e.sides:
            got, want = Counter(held[side].tolist()), Counter(planned.tolist())
            if got == want:
                continue
            missing, extra = want - got, got - want
            epoch = t // e.plan.batches_per_epoch
            same_epoch = range(epoch * e.plan.batches_per_epoch, (epoch + 1) * e.plan.batches_per_epoch)
            moved = next((k for k in same_epoch if k != t and Counter(canonical[e.plan.batch_indices(k)].tolist())
                          == got), None)
            if moved is not None:
                what = f"the plan's batch of step {moved}: batches reordered within epoch {epoch}"
            elif not extra:
                what = f"rows {ids(sorted(missing.elements()))} dropped"
            elif not missing:
                what = f"rows {ids(sorted(extra.elements()))} repeated"
            else:
                what = f"rows {ids(sorted(extra.elements()))} in place of {ids(sorted(missing.elements()))}"
            return Finding("batch rows", side, f"{side}'s batch at step {t} held rows {ids(held[side])}, the plan's "
                                               f"(and {other}'s) {ids(planned)}: {what}")
    return None


def accumulated_gradients(e: Evidence) -> Finding | None:
    """A side whose gradients at the step equal the sum of the other side's over steps 0..step
    (before the first divergent step both sides agreed, so the other's are the true ones there)."""
    t = e.step
    if t == 0:
        return None
    for side, other in e.sides:
        mine, true = e.runs[side].grads, e.runs[other].grads
        if not mine or any(len(v) <= t for v in (*mine.values(), *true.values())):
            continue
        if all(agree(mine[p][t], true[p][: t + 1].sum(axis=0), e.tolerance)
               and not agree(mine[p][t], true[p][t], e.tolerance) for p in mine if p in true):
            return Finding("accumulated gradients", side,
                           f"{side}'s gradients at step {t} equal the sum of {other}'s gradients of steps 0..{t}: "
                           "gradients accumulate across steps (not reset between steps, e.g. no zero_grad)")
    return None


def record_late(e: Evidence) -> Finding | None:
    """A side whose recorded parameters after each step k of steps t..t+2 (at least two of them)
    are the other side's parameters *before* step k (and not after it), while the two sides'
    gradients agree at those steps: it trained as the other did, and wrote its parameters to the
    record before its update."""
    t = e.step
    for side, other in e.sides:
        mine, theirs = e.runs[side], e.runs[other]
        names = [p for p in mine.params if p in theirs.params and p in mine.grads and p in theirs.grads]
        steps = range(t, min(t + 3, mine.steps, theirs.steps))
        if not names or len(steps) < 2:  # one step alone: a record late and a side that did not move look alike
            continue
        if all(all(agree(mine.params[p][k], theirs.params_before(k)[p], e.tolerance)
                   and agree(mine.grads[p][k], theirs.grads[p][k], e.tolerance) for p in names)
               and not all(agree(mine.params[p][k], theirs.params[p][k], e.tolerance) for p in names)
               for k in steps):
            return Finding("record one step late", side,
                           f"{side}'s recorded parameters after step k are {other}'s before step k, for every k in "
                           f"{steps.start}..{steps.stop - 1}, while their gradients at those steps agree: {side} "
                           "trained as {other} did and wrote its parameters to the record before its update "
                           "(the record one step late), so its record's update says nothing of its learning rate"
                           .replace("{other}", other))
    return None
