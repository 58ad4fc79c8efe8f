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
* ``record_late``: a side whose recorded parameters after each step are the other side's before
  it (written to the record before the update);
* ``effective_learning_rate``: SGD whose update / gradient ratio is one constant other than
  the declared learning rate (with momentum: at step 0);
* ``weight_decay``: plain SGD whose update is -lr (gradient + lambda w), lambda measured;
* ``activation_applied``: a layer whose output is another activation of its own inputs;
* ``kernel_layout``: a layer whose output is computed with its kernel read in another layout;
* ``activation_derivative``: gradients reproduced by the reference's backpropagation with one
  activation's derivative swapped for a known slip (evaluated at the wrong point, ...);
* ``clip_applied``: a cross-entropy whose value is another guard's than the declared one;
* ``float32_values``: a float64 run whose values at a stage are all exactly float32 numbers
  while the other side's are not (computed in single precision, cast back);
* ``gradient_scaled``: recorded gradients that are the other side's times the declared learning
  rate or momentum (the rate applied to the gradient before the step);
* ``constant_factor``: values that are one constant multiple of the other side's: at a stage, on
  every stage of its kind, or recomputed at the same parameters over steps t..t+3.

A measure made on a side's record (update = params[t] - params[t-1]) first checks its premise,
that the record's update is the side's update at the step (``_record_is_the_update``: the side's
own replay of the step goes from the one to the other).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np
import numpy.typing as npt

from harness.run.adapters import adapter
from harness.run.plan import TrainingPlan
from harness.run.runner import framework_of
from harness.run.trajectory import RowIds, Trajectory, trace_stages
from harness.spec.scenario import Scenario, TrainingSpec
from harness.spec.tolerance import Tolerance, compare_elements
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


def _record_is_the_update(e: Evidence, side: str) -> bool:
    """The premise of a measure made on a side's record (update = params[t] - params[t-1]): the
    side's own replay of the step starts from the record's parameters before step t and ends at
    the record's after it. False when the step was not replayed (nothing to check it with) or the
    record holds something else (e.g. its parameters written before the update)."""
    trace, run, t = e.traces.get(side), e.runs[side], e.step
    if trace is None or not run.params or any(len(v) <= t for v in run.params.values()):
        return False
    before = run.params_before(t)
    return all(f"params {p}" in trace and f"updated {p}" in trace
               and _agree(trace[f"params {p}"], before[p], e.tolerance)
               and _agree(trace[f"updated {p}"], run.params[p][t], e.tolerance) for p in run.params)


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
        if all(all(_agree(mine.params[p][k], theirs.params_before(k)[p], e.tolerance)
                   and _agree(mine.grads[p][k], theirs.grads[p][k], e.tolerance) for p in names)
               and not all(_agree(mine.params[p][k], theirs.params[p][k], e.tolerance) for p in names)
               for k in steps):
            return Finding("record one step late", side,
                           f"{side}'s recorded parameters after step k are {other}'s before step k, for every k in "
                           f"{steps.start}..{steps.stop - 1}, while their gradients at those steps agree: {side} "
                           "trained as {other} did and wrote its parameters to the record before its update "
                           "(the record one step late), so its record's update says nothing of its learning rate"
                           .replace("{other}", other))
    return None


def _sgd_rate(spec: TrainingSpec | None, step: int) -> float | None:
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
    (``_record_is_the_update``)."""
    t = e.step
    for side, _ in e.sides:
        spec = e.scenarios[side].training
        expected = _sgd_rate(spec, t)
        if spec is None or expected is None or not _record_is_the_update(e, side):
            continue
        run = e.runs[side]
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
        lr, declared = float(np.median(ratio)), expected
        slack = bound + 8 * _eps(e.dtype) * abs(lr)
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


def _first_differing_output(e: Evidence) -> int | None:
    """The first layer whose output stage is beyond the tolerance between the two sides (None when
    none is, or when a side's trace lacks an output stage before it)."""
    ta, tb = e.traces.get(e.a), e.traces.get(e.b)
    for i in range(len(e.scenarios[e.a].layers)):
        stage = f"output layers.{i}"
        if ta is None or tb is None or stage not in ta or stage not in tb:
            return None
        if not _agree(ta[stage], tb[stage], e.tolerance):
            return i
    return None


def _layer_input(e: Evidence, trace: dict[str, np.ndarray], i: int) -> np.ndarray:
    """What layer ``i`` took in at the evidence's step, as the side's trace holds it."""
    return e.plan.X[e.plan.batch_indices(e.step)] if i == 0 else trace[f"output layers.{i - 1}"]


def activation_applied(e: Evidence) -> Finding | None:
    """A layer whose output, at the first output stage beyond the tolerance, is another activation
    of the side's own inputs and parameters than the declared one."""
    i = _first_differing_output(e)
    if i is None:
        return None
    layer, stage = e.scenarios[e.a].layers[i], f"output layers.{i}"
    for side, _ in e.sides:
        trace = e.traces[side]
        with np.errstate(all="ignore"):  # a diverged run's outputs may overflow here: no warning
            z = _layer_input(e, trace, i) @ trace[f"params {kernel_name(i)}"]
            if f"params {bias_name(i)}" in trace:
                z = z + trace[f"params {bias_name(i)}"]
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


def _layouts(kernel: np.ndarray) -> dict[str, np.ndarray]:
    """The kernel in the other layouts a slip reads it in (each different from the kernel)."""
    out = {"its transpose read in row-major order (a reshape where a transpose was meant)":
           np.ascontiguousarray(kernel.T).reshape(kernel.shape)}
    if kernel.shape[0] == kernel.shape[1]:
        out["transposed"] = kernel.T
    return {how: k for how, k in out.items() if not np.array_equal(k, kernel)}


def kernel_layout(e: Evidence) -> Finding | None:
    """A layer whose output, at the first output stage beyond the tolerance, is its declared
    activation of its own input times its own kernel read in another layout (``_layouts``), while
    the parameters it holds are the kernel as laid out."""
    i = _first_differing_output(e)
    if i is None:
        return None
    layer, stage = e.scenarios[e.a].layers[i], f"output layers.{i}"
    for side, _ in e.sides:
        trace = e.traces[side]
        x = _layer_input(e, trace, i)
        act = ACTIVATIONS[e.scenarios[side].layers[i].activation]
        bias = trace.get(f"params {bias_name(i)}")

        def output(kernel: np.ndarray) -> np.ndarray:
            z = x @ kernel if bias is None else x @ kernel + bias
            return act.forward(z, axis=layer.axis) if act.takes_axis else act.forward(z)
        kernel = trace[f"params {kernel_name(i)}"]
        with np.errstate(all="ignore"):
            if _agree(output(kernel), trace[stage], e.tolerance):
                continue
            for how, read in _layouts(kernel).items():
                if _agree(output(read), trace[stage], e.tolerance):
                    return Finding("kernel layout", side,
                                   f"{side}'s layers.{i} computed its output at step {e.step} with its kernel "
                                   f"{how}: its output is {act.name}(x K' + b) of its own input and parameters, "
                                   "while the kernel it holds is laid out as declared")
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


def _factor(a: np.ndarray, b: np.ndarray, dtype: str) -> tuple[float, int] | None:
    """(r, n): every one of the n compared elements of ``a`` is r x ``b``'s (r not 1), within 64
    ulps; None otherwise, or with fewer than 2 elements to compare (one number is always some
    multiple of another)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    ok = np.isfinite(a) & np.isfinite(b) & (a != 0) & (b != 0)
    if ok.sum() < 2 or np.any(((a == 0) != (b == 0)) & np.isfinite(a) & np.isfinite(b)):
        return None
    ratio = a[ok] / b[ok]
    r, noise = float(np.median(ratio)), 64 * _eps(dtype)
    if np.all(np.abs(ratio - r) <= noise * abs(r)) and abs(r - 1) > 16 * noise:
        return r, int(ok.sum())
    return None


def _compared(a: np.ndarray, b: np.ndarray) -> int:
    """How many elements ``_factor`` can compare: finite and non-zero on both sides."""
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
                loss, grads = adapter(framework_of(label)).gradients(
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
    found = _factor(ta[stage], tb[stage], e.dtype)
    if found is not None and found[1] >= 3:
        r, n = found
        return Finding("constant factor", None,
                       f"`{stage}` of {e.a} is {r:.8g} x {e.b}'s at step {e.step}, the same factor for all "
                       f"{n} elements (a dropped or extra factor, a mean over another count, a scaled function)")
    kind = stage.split(" ", 1)[0]
    stages = [x for x in ta if x.split(" ", 1)[0] == kind and x in tb] if kind in ("gradient", "output") else []
    if len(stages) > 1:
        found = _factor(np.concatenate([np.ravel(ta[x]) for x in stages]),
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
    found = None if measured is None else _factor(*measured, e.dtype)
    if found is None or found[1] < 3:
        return None
    r, n = found
    return Finding("constant factor", None,
                   f"`{stage}` of {e.a} is {r:.8g} x {e.b}'s computed at the same parameters and batch at steps "
                   f"{steps.start}..{steps.stop - 1} ({e.a}'s parameters before each step), the same factor for all "
                   f"{n} values (a dropped or extra factor, a mean over another count, a scaled function)")


# --- causes measured on the record over several steps, or by recomputing a step ---------------

def weight_decay(e: Evidence) -> Finding | None:
    """Plain SGD: a side whose update at steps t..t+2 is ``-lr (gradient + lambda w)``, one lambda
    for every element and step (an extra term proportional to the weights: weight decay, an L2
    penalty), none being declared. lambda is the least-squares fit of
    ``r = (w_before - w_after) / lr - gradient`` on ``w_before``; every residual must be within the
    rounding of the quantities it is made of, and lambda w clearly beyond it. Its premise, that the
    record's update is the side's (``_record_is_the_update``), is checked at step t."""
    t = e.step
    for side, _ in e.sides:
        spec, run = e.scenarios[side].training, e.runs[side]
        if spec is None or spec.optimizer.name != "sgd" or spec.optimizer.options.get("momentum", 0.0) != 0.0:
            continue
        if not _record_is_the_update(e, side):
            continue
        lr, eps, steps = spec.optimizer.learning_rate, _eps(e.dtype), range(t, min(t + 3, run.steps))
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


# Each element-wise activation's derivative as a function of its input z and output a (the
# reference's rules restated here, so that the check does not run the code it checks), and the
# derivatives a slip puts in its place, each named.
Derivative = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _logistic(x: np.ndarray) -> np.ndarray:
    one = np.asarray(1, dtype=x.dtype)
    return np.asarray(one / (one + np.exp(-x)))


DERIVATIVES: dict[str, tuple[str, Derivative]] = {
    "linear": ("1", lambda z, a: np.ones_like(z)),
    "sigmoid": ("a (1 - a)", lambda z, a: a * (1 - a)),
    "tanh": ("1 - a^2", lambda z, a: 1 - a * a),
    "relu": ("1 where z > 0, else 0", lambda z, a: (z > 0).astype(z.dtype)),
    "exponential": ("a", lambda z, a: a),
}
WRONG_DERIVATIVES: dict[str, dict[str, Derivative]] = {
    "tanh": {"1 - z^2 (the output's formula evaluated at the input z)": lambda z, a: 1 - z * z,
             "1 - tanh(a)^2 (the derivative evaluated at the output a = tanh(z))": lambda z, a: 1 - np.tanh(a) ** 2,
             "1 - a (the square dropped)": lambda z, a: 1 - a},
    "sigmoid": {"z (1 - z) (the output's formula evaluated at the input z)": lambda z, a: z * (1 - z),
                "sigmoid(a) (1 - sigmoid(a)) (the derivative evaluated at the output a = sigmoid(z))":
                    lambda z, a: _logistic(a) * (1 - _logistic(a)),
                "1 - a^2 (tanh's)": lambda z, a: 1 - a * a},
    "relu": {"1 at z = 0 (relu'(0) = 1)": lambda z, a: (z >= 0).astype(z.dtype)},
}


def _backpropagate(e: Evidence, side: str, swapped: tuple[int, Derivative] | None = None) -> dict[str, np.ndarray]:
    """The gradients of the step from the side's own trace (its parameters and layer outputs),
    by the reference's backpropagation with each element-wise activation's derivative from
    ``DERIVATIVES``, except layer ``swapped[0]``'s, which is ``swapped[1]`` (softmax: the
    reference's Jacobian product). The loss gradient is the reference's."""
    trace, scenario = e.traces[side], e.scenarios[side]
    spec, layers = scenario.training_spec, scenario.layers
    idx = e.plan.batch_indices(e.step)
    inputs = [e.plan.X[idx]] + [trace[f"output layers.{i}"] for i in range(len(layers) - 1)]
    y = e.plan.y[idx]
    grad_a = get_loss(spec.loss).gradient(y, trace[f"output layers.{len(layers) - 1}"], clip=spec.clip)
    grads: dict[str, np.ndarray] = {}
    for i in reversed(range(len(layers))):
        kernel, a = trace[f"params {kernel_name(i)}"], trace[f"output layers.{i}"]
        z = inputs[i] @ kernel
        if layers[i].use_bias:
            z = z + trace[f"params {bias_name(i)}"]
        name = layers[i].activation
        if swapped is not None and swapped[0] == i:
            delta = grad_a * swapped[1](z, a)
        elif name in DERIVATIVES:
            delta = grad_a * DERIVATIVES[name][1](z, a)
        else:
            delta = ACTIVATIONS[name].backward(z, a, grad_a, axis=layers[i].axis)
        grads[kernel_name(i)] = inputs[i].T @ delta
        if layers[i].use_bias:
            grads[bias_name(i)] = delta.sum(axis=0)
        grad_a = delta @ kernel.T
    return grads


def activation_derivative(e: Evidence) -> Finding | None:
    """A side whose gradients at the step, from its own parameters and layer outputs, are
    reproduced by the reference's backpropagation with one layer's activation derivative swapped
    for a known slip (``WRONG_DERIVATIVES``: evaluated at the wrong point, a square dropped, another
    activation's), and not with the right one."""
    for side, other in e.sides:
        trace, layers = e.traces.get(side), e.scenarios[side].layers
        if trace is None or e.scenarios[side].training is None or not all(
                f"gradient {p}" in trace for p in e.scenarios[side].param_names()):
            continue

        def reproduces(grads: dict[str, np.ndarray], label: str = side) -> bool:
            return all(_agree(g, e.traces[label][f"gradient {p}"], e.tolerance) for p, g in grads.items())
        with np.errstate(all="ignore"):
            if reproduces(_backpropagate(e, side)):
                continue
            for i, layer in enumerate(layers):
                for slip, derivative in WRONG_DERIVATIVES.get(layer.activation, {}).items():
                    if not reproduces(_backpropagate(e, side, (i, derivative))):
                        continue
                    also = (f"; {other}'s are reproduced with the right one" if other in e.traces and
                            reproduces(_backpropagate(e, other), other) else "")
                    return Finding("activation derivative", side,
                                   f"{side}'s gradients at step {e.step} are the reference's backpropagation of its "
                                   f"own layer outputs with layers.{i}'s {layer.activation} derivative taken as "
                                   f"{slip}, not {DERIVATIVES[layer.activation][0]}{also}")
    return None


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
        if not all(_agree(mine.params_before(t)[p], theirs.params_before(t)[p], e.tolerance) for p in names):
            continue
        found = _factor(np.concatenate([mine.grads[p][t].ravel() for p in names]),
                        np.concatenate([theirs.grads[p][t].ravel() for p in names]), e.dtype)
        if found is None:
            continue
        r, n = found
        rates = {"learning rate": spec.optimizer.learning_rate,
                 "momentum": float(spec.optimizer.options.get("momentum", 0.0))}
        which = [k for k, v in rates.items() if v and abs(r - v) <= 64 * _eps(e.dtype) * abs(v)]
        if not which:
            continue
        rate = _sgd_rate(spec, t)
        then = ""
        if rate is not None and _record_is_the_update(e, side):
            update = np.concatenate([(mine.params_before(t)[p] - mine.params[p][t]).ravel() for p in names])
            recorded = np.concatenate([mine.grads[p][t].ravel() for p in names])
            ok = np.abs(recorded) > 0
            if ok.any():
                u = float(np.median(update[ok] / recorded[ok]))
                then = (f"; its update / recorded gradient is {u:.6g}" +
                        (", the declared rate, on the scaled record: the rate is applied twice" if abs(u - rate) <= 64
                         * _eps(e.dtype) * abs(rate) else ""))
        return Finding("rate applied to the gradient", side,
                       f"{side}'s recorded gradients at step {t} are {r:.8g} x {other}'s at the same parameters, for "
                       f"all {n} elements: the declared {' / '.join(which)} {rates[which[0]]:g} applied to the "
                       f"gradient itself before the step{then}")
    return None
