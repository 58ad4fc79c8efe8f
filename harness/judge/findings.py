"""Causes of a divergence found by measurement: exact checks on what each side actually computed.

The control runs in ``harness.judge.diagnosis`` explain differences a scenario *declares*
(an optimizer convention, a clip, a learning rate). A defect in code declares nothing, so these
checks measure it instead, on the disagreeing pair at the step of its diagnosis, from the runs'
own records (``Trajectory.computed_dtypes``, ``Trajectory.batch_rows``, gradients and parameters)
and the stage-by-stage traces of that step. Each check returns a ``Finding`` only when its
measurement confirms it exactly (every element, within the agreement rule where rounding
enters); otherwise None, and "no known cause" stays honest.

Checks, in the order the diagnosis tries them (``harness.judge.diagnosis.CAUSES``):

* ``computed_dtype``: a side whose own tensors had another dtype than the run's;
* ``initial_parameters``: a side that did not start from the declared parameters (the same
  values in another order: a reshape where a transpose was meant);
* ``batch_rows``: the first step whose batch held other rows than the plan's (reordered,
  dropped or repeated);
* ``accumulated_gradients``: a side whose gradient at step t is the sum of the true gradients of
  steps 0..t (gradients not reset between steps);
* ``effective_learning_rate``: plain SGD whose update / gradient ratio is one constant other than
  the declared learning rate;
* ``activation_applied``: a layer whose output is another activation of its own inputs;
* ``clip_applied``: a cross-entropy whose value is another guard's than the declared one;
* ``float32_values``: a float64 run whose values at a stage are all exactly float32 numbers
  while the other side's are not (computed in single precision, cast back);
* ``constant_factor``: a stage whose values are one constant multiple of the other side's.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np
import numpy.typing as npt

from harness.judge.tolerance import Tolerance, compare_elements
from harness.run.plan import TrainingPlan
from harness.run.trajectory import RowIds, Trajectory, trace_stages
from harness.spec.scenario import Scenario
from reference.activations import ACTIVATIONS
from reference.losses import CLIP_MODES, get_loss
from reference.network import bias_name, kernel_name

Trace = dict[str, np.ndarray]
CROSS_ENTROPIES = ("binary_crossentropy", "categorical_crossentropy")


@dataclass(frozen=True)
class Evidence:
    """A disagreeing (or drifting) pair at the step of its diagnosis, as the checks see it."""

    a: str  # the pair's labels
    b: str
    dtype: str
    step: int
    stage: str | None  # where within the step the difference shows (``Localisation.stage``)
    runs: dict[str, Trajectory]  # label -> its run
    scenarios: dict[str, Scenario]  # label -> the scenario it ran
    traces: dict[str, Trace]  # label -> its replay of ``step`` (missing when not traced)
    plan: TrainingPlan
    tolerance: Tolerance

    @property
    def sides(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """(side, other side), both ways."""
        return (self.a, self.b), (self.b, self.a)


@dataclass(frozen=True)
class Finding:
    """What a check measured; ``side`` is the implementation it points at (None: the measurement
    relates the two sides without saying which one is wrong)."""

    check: str
    side: str | None
    description: str

    @property
    def summary(self) -> str:
        return self.description

    def describe(self) -> str:
        return self.description


Check = Callable[[Evidence], "Finding | None"]


def _eps(dtype: str) -> float:
    return float(np.finfo(np.dtype(dtype)).eps)


def _agree(a: npt.ArrayLike, b: npt.ArrayLike, tol: Tolerance) -> bool:
    return not bool(compare_elements(np.atleast_1d(np.asarray(a)), np.atleast_1d(np.asarray(b)), tol).bad.any())


def _ids(values: npt.ArrayLike, limit: int = 8) -> str:
    items = [int(v) for v in np.asarray(values).ravel()]
    return "[" + ", ".join(map(str, items[:limit])) + (", ..." if len(items) > limit else "") + "]"


# --- the checks ------------------------------------------------------------------

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
            if held is None or held.shape != declared.shape or _agree(held, declared, e.tolerance):
                continue
            if np.array_equal(np.sort(held, axis=None), np.sort(declared, axis=None)):
                how = ("its transpose read in row-major order (a reshape where a transpose was meant)"
                       if held.ndim == 2 and np.array_equal(held, np.ascontiguousarray(declared.T).reshape(held.shape))
                       else "permuted")
                return Finding("initial parameters", side,
                               f"{side} started from `{name}` holding the declared values in another order: {how}")
            return Finding("initial parameters", side, f"{side} did not start from the declared `{name}`")
    return None


def batch_rows(e: Evidence) -> Finding | None:
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
                what = f"rows {_ids(sorted(missing.elements()))} dropped"
            elif not missing:
                what = f"rows {_ids(sorted(extra.elements()))} repeated"
            else:
                what = f"rows {_ids(sorted(extra.elements()))} in place of {_ids(sorted(missing.elements()))}"
            return Finding("batch rows", side, f"{side}'s batch at step {t} held rows {_ids(held[side])}, the plan's "
                                               f"(and {other}'s) {_ids(planned)}: {what}")
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
        if all(_agree(mine[p][t], true[p][: t + 1].sum(axis=0), e.tolerance)
               and not _agree(mine[p][t], true[p][t], e.tolerance) for p in mine if p in true):
            return Finding("accumulated gradients", side,
                           f"{side}'s gradients at step {t} equal the sum of {other}'s gradients of steps 0..{t}: "
                           "gradients accumulate across steps (not reset between steps, e.g. no zero_grad)")
    return None


def effective_learning_rate(e: Evidence) -> Finding | None:
    """Plain SGD (no momentum): a side whose update / gradient ratio at the step is one constant
    for every element, other than the declared learning rate."""
    t = e.step
    for side, _ in e.sides:
        spec = e.scenarios[side].training
        if spec is None or spec.optimizer.name != "sgd" or spec.optimizer.options.get("momentum", 0.0) != 0.0:
            continue
        run = e.runs[side]
        if not run.params or any(len(v) <= t for v in run.params.values()):
            continue
        before, after = run.params_before(t), {p: v[t] for p, v in run.params.items()}
        ratios, bounds = [], []
        for p in after:
            g = run.grads[p][t].astype(np.float64)
            b0, b1 = before[p].astype(np.float64), after[p].astype(np.float64)
            ok = np.isfinite(g) & (np.abs(g) > 0) & np.isfinite(b0) & np.isfinite(b1)
            ratios.append(((b0 - b1) / np.where(ok, g, 1.0))[ok])
            bounds.append((8 * _eps(e.dtype) * (np.abs(b0) + np.abs(b1)) / np.where(ok, np.abs(g), 1.0))[ok])
        ratio, bound = np.concatenate(ratios), np.concatenate(bounds)
        if ratio.size < 2:
            continue
        lr, declared = float(np.median(ratio)), spec.optimizer.learning_rate
        slack = bound + 8 * _eps(e.dtype) * abs(lr)
        if not np.all(np.abs(ratio - lr) <= slack) or abs(lr - declared) <= 4 * float(slack.max()):
            continue
        as_f32 = float(np.float32(declared))
        note = "; the declared rate rounded to float32" if abs(lr - as_f32) <= 4 * float(slack.max()) else ""
        return Finding("effective learning rate", side,
                       f"{side} updated with an effective learning rate {lr:.10g} at step {t} (update / gradient, "
                       f"the same for all {ratio.size} elements) where {declared:g} is declared "
                       f"({lr / declared:.10g} x{note})")
    return None


def activation_applied(e: Evidence) -> Finding | None:
    """A layer whose output, at the first output stage beyond the tolerance, is another activation
    of the side's own inputs and parameters than the declared one."""
    layers = e.scenarios[e.a].layers
    for i, layer in enumerate(layers):
        stage = f"output layers.{i}"
        ta, tb = e.traces.get(e.a), e.traces.get(e.b)
        if ta is None or tb is None or stage not in ta or stage not in tb:
            return None
        if _agree(ta[stage], tb[stage], e.tolerance):
            continue
        for side, _ in e.sides:
            trace = e.traces[side]
            x = e.plan.X[e.plan.batch_indices(e.step)] if i == 0 else trace[f"output layers.{i - 1}"]
            z = x @ trace[f"params {kernel_name(i)}"]
            if f"params {bias_name(i)}" in trace:
                z = z + trace[f"params {bias_name(i)}"]
            with np.errstate(all="ignore"):
                applied = [name for name, act in ACTIVATIONS.items()
                           if _agree(act.forward(z, axis=layer.axis) if act.takes_axis else act.forward(z),
                                     trace[stage], e.tolerance)]
            declared = e.scenarios[side].layers[i].activation  # the side's own scenario (a variant may differ)
            if applied and declared not in applied:
                return Finding("activation applied", side,
                               f"{side}'s layers.{i} applied {' / '.join(applied)} where {declared} is "
                               f"declared: its output at step {e.step} is {applied[0]}(x W + b) of its own input "
                               "and parameters")
        return None
    return None


def clip_applied(e: Evidence) -> Finding | None:
    """A cross-entropy whose value, from the side's own output, is another guard's than the declared."""
    spec = e.scenarios[e.a].training
    if spec is None or spec.loss not in CROSS_ENTROPIES:
        return None
    last = f"output layers.{len(e.scenarios[e.a].layers) - 1}"
    y = e.plan.y[e.plan.batch_indices(e.step)]
    for side, _ in e.sides:
        trace, declared = e.traces.get(side), e.scenarios[side].training_spec.clip
        if trace is None or last not in trace:
            continue
        with np.errstate(all="ignore"):
            applied = [c for c in CLIP_MODES
                       if _agree(get_loss(spec.loss).value(y, trace[last], clip=c), trace["loss"], e.tolerance)]
        if applied and declared not in applied:
            return Finding("clip applied", side,
                           f"{side}'s loss at step {e.step} is the {' / '.join(repr(c) for c in applied)} guard's "
                           f"of its own output, where clip {declared!r} is declared")
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


def constant_factor(e: Evidence) -> Finding | None:
    """At the localised stage, one side's values are one constant multiple of the other's."""
    ta, tb = e.traces.get(e.a), e.traces.get(e.b)
    if e.stage is None or ta is None or tb is None or e.stage not in ta or e.stage not in tb:
        return None
    a = np.asarray(ta[e.stage], dtype=np.float64).ravel()
    b = np.asarray(tb[e.stage], dtype=np.float64).ravel()
    ok = np.isfinite(a) & np.isfinite(b) & (np.abs(b) > 0) & (np.abs(a) > 0)
    if ok.sum() < 3:  # two numbers are always in some ratio: a factor needs more elements than that
        return None
    ratio = a[ok] / b[ok]
    r, noise = float(np.median(ratio)), 64 * _eps(e.dtype)
    if np.all(np.abs(ratio - r) <= noise * abs(r)) and abs(r - 1) > 16 * noise:
        return Finding("constant factor", None,
                       f"`{e.stage}` of {e.a} is {r:.8g} x {e.b}'s at step {e.step}, the same factor for all "
                       f"{int(ok.sum())} elements (a dropped or extra factor, a mean over another count, a scaled "
                       "function)")
    return None
