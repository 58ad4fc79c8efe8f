"""Why two runs of a scenario diverge: where the difference first appears, and a named cause.

For a pair that disagrees, three questions are answered in turn:

1. **When**: the first step and parameter whose difference crosses the tolerance
   (``Comparison.mismatch``).
2. **Where within that step**: both implementations replay their own run up to that
   step and record it stage by stage in data-flow order (``trace_step``; stages named by
   ``harness.run.trajectory.trace_stages``). For each stage ``k`` the scale-free difference
   ``d_k = max_i |a_i - b_i| / max(|a_i|, |b_i|)`` and its rate of change against the
   previous stage::

       R_k = (d_k - d_{k-1}) / (d_{k-1} + floor)        (d_{-1} = 0)

   with ``floor = r_floor(dtype)``: 1e-7, and never under 256 ulps of the dtype, so a few
   float32 roundings entering at a stage (d ~ 30 ulps ~ 3.5e-6: R = 35 with a 1e-7 floor) do not
   count as a difference appearing there.

   as differential testers of deep-learning libraries do. The difference *appears* at
   the first stage with ``R_k > R_THRESHOLD``; the first stage whose elements break the
   tolerance is reported beside it.
   A pair that agrees but comes within ``DRIFT_FRACTION`` of its tolerance *drifts* and is
   diagnosed the same way, at the step where it comes closest (``Comparison.closest``).
3. **Why**: a registry of known causes (``CAUSES``), each confirmed either by a control run,
   the same pair re-run with one declared setting aligned, agreeing within the tolerance (for
   what a scenario declares: a convention, a clip, a learning rate, float32), or by an exact
   measurement of what one side actually computed (``harness.judge.findings``: the dtype of its
   tensors, the rows of its batches, accumulated gradients, its effective learning rate, the
   activation or guard it applied, a constant factor). A cause is named only when confirmed.
4. **Who**: with three or more implementations in a dtype, the one that disagrees with every
   other while those agree among themselves is named the *suspect* (``suspect``); a two-way
   disagreement, or no clear odd one out, names none ("no majority"). A reference run in one
   optimizer convention that does not follow that convention's update rule, computed
   independently (``harness.judge.textbook``), is the suspect itself.

An optimizer convention is confirmed as a cause only by evidence independent of the formula it
explains: each side against the reference in its convention (never a side re-run in the other's
convention: that is the other side's own code when both are the reference), and each of those
reference runs against the convention's rule. Runs that agree until one of them stops early are
localised at ``EARLY_STOP``, saying which side stopped when and whether the declared rule fires.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np

from harness.errors import BadInput
from harness.judge import findings, guard_at_zero
from harness.judge.compare import DISAGREE, Comparison, compare
from harness.judge.findings import Evidence, Finding
from harness.judge.textbook import OWNERS, RuleCheck
from harness.judge.tolerance import Tolerance, compare_elements
from harness.judge.tolerance import difference as difference_of
from harness.run.adapters import ALL_FRAMEWORKS, REFERENCE, adapter, run_framework, trace_framework
from harness.run.plan import TrainingPlan, make_plan
from harness.run.runner import (
    Progress,
    ScenarioResult,
    bridge_of,
    check_rule,
    check_runnable,
    control_label,
    convention_of,
    framework_of,
    in_convention,
    narrowed,
    reference_in,
    side_plan,
    with_convention,
)
from harness.run.trajectory import Trajectory, trace_stages
from harness.spec.conventions import difference, number
from harness.spec.scenario import Scenario
from reference.optimizers import CONVENTIONS, DEFAULTS, formulas

R_EPSILON = 1e-7
R_FLOOR_ULPS = 256
# Decision: a stage "introduces" the difference when it grows more than tenfold over
# the previous stage's (plus the floor); float64 rounding (~1e-16) never reaches it, nor do a
# few hundred float32 ulps (the floor is 256 ulps in float32: d must pass ~3e-4), a wrong
# formula or setting does; a smaller defect is still localised by the first stage beyond the
# tolerance.
R_THRESHOLD = 10.0


def r_floor(dtype: str) -> float:
    """The floor of R's denominator in ``dtype``: ``max(R_EPSILON, R_FLOOR_ULPS * eps)``."""
    return max(R_EPSILON, R_FLOOR_ULPS * float(np.finfo(np.dtype(dtype)).eps))
# Decision: a pair that agrees but at some step uses at least half of its tolerance
# "drifts", and is diagnosed like a disagreement, at that step.
DRIFT_FRACTION = 0.5
NO_CAUSE = "no known cause confirmed"
RUN_LOOP = "the run loop"  # the stage named when a side's replay does not reproduce its own run
EARLY_STOP = "the early stop"  # the stage named when the runs agree until one of them stops


# --- growth over training -----------------------------------------------------

@dataclass
class Growth:
    """How a pair's difference evolves over training."""

    first: float  # max |a - b| at step 0
    last: float  # at the last common step
    worst: float
    worst_step: int
    worst_used: float  # the largest fraction of the tolerance used at any step

    def describe(self) -> str:
        return (f"max |a - b| {self.first:.2e} at step 0, {self.last:.2e} at the last step, largest "
                f"{self.worst:.2e} (step {self.worst_step}); at worst {self.worst_used:.2g} x the tolerance")


def growth(c: Comparison) -> Growth | None:
    """The pair's per-step differences (``Comparison.step_max_abs``, ``step_used``) summarised;
    None without steps (a forward-only pair)."""
    if c.step_max_abs.size == 0:
        return None
    worst_step = int(np.argmax(c.step_max_abs))
    return Growth(first=float(c.step_max_abs[0]), last=float(c.step_max_abs[-1]),
                  worst=float(c.step_max_abs[worst_step]), worst_step=worst_step, worst_used=float(c.step_used.max()))


# --- localisation within a step ----------------------------------------------

@dataclass
class StageDiff:
    stage: str
    max_abs: float
    max_rel: float  # d_k
    rate: float  # R_k
    beyond_tolerance: bool


@dataclass
class Localisation:
    step: int
    stages: list[StageDiff]
    message: str = ""  # why it could not be done, if it could not
    # implementations whose replay of the step does not reproduce their own run (the run's loss or
    # updated parameters), each with what differs: the difference lives in the run loop itself
    replay_mismatches: dict[str, str] = field(default_factory=dict)
    # implementations whose run computed in another dtype (``ScenarioResult.dtype_fault``) -> the first
    # stage of their trace holding values of another dtype than the step's, and that dtype
    wrong_dtypes: dict[str, tuple[str, str]] = field(default_factory=dict)
    # when the runs agree until one stops and the other goes on: which side stopped when, and which
    # early-stop rule each applied (``early_stop_account``)
    early_stop: str = ""

    @property
    def appears_at(self) -> StageDiff | None:
        """The first stage in data-flow order whose R exceeds R_THRESHOLD."""
        return next((s for s in self.stages if s.rate > R_THRESHOLD), None)

    @property
    def first_beyond(self) -> StageDiff | None:
        """The first stage in data-flow order with an element beyond the tolerance."""
        return next((s for s in self.stages if s.beyond_tolerance), None)

    @property
    def stage(self) -> str | None:
        """The stage the difference is localised at: the earlier, in data-flow order, of where it
        appears and the first stage beyond the tolerance (a difference that entered the step with
        the parameters shows at ``params ...``, even when it grew too slowly for R); else, when a
        side's replay does not reproduce its own run, that side's run loop (``RUN_LOOP``); None
        when nothing was traced or no stage differs."""
        if self.early_stop:
            return EARLY_STOP
        names = [s.stage for s in self.stages]
        found = [s.stage for s in (self.appears_at, self.first_beyond) if s is not None]
        found += [stage for stage, _ in self.wrong_dtypes.values() if stage in names]
        if found:
            return min(found, key=names.index)
        return RUN_LOOP if self.replay_mismatches else None

    def describe(self) -> str:
        if self.early_stop:
            return f"at step {self.step}, {EARLY_STOP}: {self.early_stop}"
        if self.message:
            return f"step {self.step} could not be traced: {self.message}"
        appears, beyond = self.appears_at, self.first_beyond
        where = (f"the difference appears at `{appears.stage}` (R = {appears.rate:.3g} > {R_THRESHOLD:g})"
                 if appears else f"no stage's R exceeds {R_THRESHOLD:g}")
        first = f"the first stage beyond the tolerance is `{beyond.stage}`" if beyond else \
            "no stage is beyond the tolerance when both sides replay the step"
        replays = "".join(f"; {label}'s replay of the step does not reproduce its run ({what}): the "
                          "difference is in its run loop, which the replay does not share"
                          for label, what in self.replay_mismatches.items())
        dtypes = "".join(f"; {label}'s trace holds {dtype} values from `{stage}` on"
                         for label, (stage, dtype) in self.wrong_dtypes.items())
        return f"within step {self.step}, {where}; {first}{replays}{dtypes}"


def stage_differences(trace_a: dict[str, np.ndarray], trace_b: dict[str, np.ndarray], stages: list[str],
                      tol: Tolerance, *, floor: float = R_EPSILON) -> list[StageDiff]:
    out, previous = [], 0.0
    for stage in stages:
        a = np.atleast_1d(np.asarray(trace_a[stage]))
        b = np.atleast_1d(np.asarray(trace_b[stage]))
        e = compare_elements(a, b, tol)
        d = float(e.rel.max()) if e.rel.size else 0.0
        with np.errstate(invalid="ignore", over="ignore"):
            rate = (d - previous) / (previous + floor)
        out.append(StageDiff(stage=stage, max_abs=float(e.diff.max()), max_rel=d,
                             rate=float(np.nan_to_num(rate, nan=0.0)), beyond_tolerance=bool(e.bad.any())))
        previous = d
    return out


Traces = dict[tuple[str, str, int], dict[str, np.ndarray]]  # (framework, dtype, step) -> trace


def localise(result: ScenarioResult, c: Comparison, step: int, *, progress: Progress | None = None,
             cache: Traces | None = None) -> Localisation:
    """Trace ``step`` of the pair in both implementations and compare stage by stage (``cache``
    keeps traces across the pairs of one scenario: each framework replays a step once)."""
    if not result.scenario.trains:
        return Localisation(step, [], message="a forward-only scenario: the per-layer outputs in the agreement "
                                              "table are the whole computation")
    if step >= min(c.steps_a, c.steps_b):
        return Localisation(step, [], early_stop=early_stop_account(result, c))
    plan = result.plans[c.dtype]
    cache = {} if cache is None else cache
    traces = {}
    for fw in (c.a, c.b):
        if (fw, c.dtype, step) in cache:
            traces[fw] = cache[(fw, c.dtype, step)]
            continue
        start = time.perf_counter()
        try:
            traces[fw] = trace_framework(framework_of(fw), side_plan(plan, result.scenario_for(fw)), step)
        except Exception as exc:  # a crash while tracing is reported, not raised
            last = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
            return Localisation(step, [], message=f"{fw} raised {type(exc).__name__}: {last}")
        cache[(fw, c.dtype, step)] = traces[fw]
        if progress is not None:
            progress(f"{result.scenario.name} x {fw} ({c.dtype}): traced step {step}, "
                     f"{time.perf_counter() - start:.1f} s")
    stages = trace_stages(result.scenario)
    tol = result.scenario.tolerances[c.dtype]
    mismatches = {fw: what for fw in (c.a, c.b)
                  if (what := replay_mismatch(traces[fw], result.runs[(fw, c.dtype)], step, tol))}
    wrong = {fw: found for fw in (c.a, c.b) if result.dtype_fault(fw, c.dtype)
             and (found := _first_wrong_dtype(traces[fw], stages, c.dtype))}
    return Localisation(step, stage_differences(traces[c.a], traces[c.b], stages, tol, floor=r_floor(c.dtype)),
                        replay_mismatches=mismatches, wrong_dtypes=wrong)


def _first_wrong_dtype(trace: dict[str, np.ndarray], stages: list[str], dtype: str) -> tuple[str, str] | None:
    """The first stage of ``trace`` whose values are not of ``dtype``, with their dtype."""
    for stage in stages:
        found = np.asarray(trace[stage]).dtype
        if found != np.dtype(dtype):
            return stage, found.name
    return None


def early_stop_account(result: ScenarioResult, c: Comparison) -> str:
    """Which side of a pair that agrees until one side stops made how many steps, and which early-stop
    rule each applied: the scenario's (``harness.run.trajectory.should_stop``: before the update of
    step t, stop when |loss_t - loss_(t-1)| < early_stop_tol), evaluated on the losses the longer
    run recorded (the same as the shorter one's up to its last step, within the tolerance)."""
    runs = {label: result.runs[(label, c.dtype)] for label in (c.a, c.b)}
    short, long = sorted(runs, key=lambda label: runs[label].steps)
    n = runs[short].steps
    tol = None if result.scenario.training is None else result.scenario.training.early_stop_tol
    made = {label: f"{label} made {run.steps} step{'' if run.steps == 1 else 's'} "
                   + (f"(stopped_early_at {run.stopped_early_at})" if run.stopped_early_at is not None
                      else "(no early stop)") for label, run in runs.items()}
    head = f"{made[short]}, {made[long]}"
    if tol is None:
        return f"{head}; the scenario declares no early stop, so {short} stopped short of its last step"
    rule = f"the declared early stop (before the update of step t, |loss_t - loss_(t-1)| < {tol:g})"
    losses = runs[long].losses
    if n == 0 or n >= len(losses):
        return f"{head}; {rule} cannot be evaluated at step {n} from their recorded losses"
    delta = abs(float(losses[n]) - float(losses[n - 1]))
    if delta >= tol:
        return (f"{head}; {rule} does not fire at step {n} (|loss_{n} - loss_{n - 1}| = {delta:.3g} by {long}'s "
                f"losses): {short} stopped where the rule does not, by another rule")
    fired = f"{head}; {rule} fires at step {n} (|loss_{n} - loss_{n - 1}| = {delta:.3g})"
    late = runs[long]
    if late.steps == n + 1 and late.stopped_early_at is not None:
        return (f"{fired}: {short} applied it, stopping before step {n}'s update; {long} made step {n}'s update "
                f"and then stopped, as a test after the update does")
    return f"{fired}: {short} applied it, stopping before step {n}'s update; {long} went on to step {late.steps - 1}"


def replay_mismatch(trace: dict[str, np.ndarray], run: Trajectory, step: int, tol: Tolerance) -> str:
    """What the replayed step has that the run did not record at ``step`` (its loss or an updated
    parameter beyond the tolerance), or "" when the replay reproduces the run."""
    recorded = {"loss": run.losses[step], **{f"updated {p}": values[step] for p, values in run.params.items()}}
    for stage, value in recorded.items():
        e = compare_elements(trace[stage], value, tol)
        if e.bad.any():
            return f"`{stage}` differs by {float(e.diff.max()):.3g}"
    return ""


# --- causes and their control runs ---------------------------------------------

@dataclass(frozen=True)
class Pair:
    """The disagreeing pair under diagnosis."""

    result: ScenarioResult
    comparison: Comparison

    @property
    def a(self) -> Scenario:
        return self.result.scenario_for(self.comparison.a)

    @property
    def b(self) -> Scenario:
        return self.result.scenario_for(self.comparison.b)

    def run(self, framework: str) -> Trajectory:
        return self.result.runs[(framework, self.comparison.dtype)]


@dataclass(frozen=True)
class Control:
    """A re-run of the pair (``scenario_a`` in implementation a, ``scenario_b`` in b) at ``dtype``;
    ``frameworks`` replaces the pair's implementations, and every control in ``also`` must agree too."""

    description: str
    dtype: str
    scenario_a: Scenario
    scenario_b: Scenario
    frameworks: tuple[str, str] | None = None
    also: tuple["Control", ...] = ()
    drift_ok: bool = False  # confirms on agreement alone (the bridge: the runner's criterion)
    # reference runs (label, scenario) that must follow their convention's update rule, computed
    # independently (``harness.judge.textbook``; the run's own check, ``rule_checks``, when it ran)
    rules: tuple[tuple[str, Scenario], ...] = ()


@dataclass(frozen=True)
class Cause:
    """A known cause of divergence: when it may apply, and what would confirm it: the controls
    (tried in order; the cause is named when one of them agrees), or an exact ``check`` of the
    pair's runs and traces (named when it returns a ``Finding``)."""

    name: str
    explanation: str
    applies: Callable[[Pair], bool] = lambda pair: True
    controls: Callable[[Pair], list[Control]] = lambda pair: []
    check: Callable[[Evidence], Finding | None] | None = None


def _align(pair: Pair, what: str, get: Callable[[Scenario], object],
           put: Callable[[Scenario, object], Scenario]) -> list[Control]:
    """Controls that give both sides one side's value of a setting (b takes a's, then a takes b's)."""
    c, va, vb = pair.comparison, get(pair.a), get(pair.b)
    return [
        Control(f"{c.a} vs {c.b} ({c.dtype}) with {what} {va!r} on both sides", c.dtype, pair.a, put(pair.b, va)),
        Control(f"{c.a} vs {c.b} ({c.dtype}) with {what} {vb!r} on both sides", c.dtype, put(pair.a, vb), pair.b),
    ]


def _with_training(scenario: Scenario, **changes: Any) -> Scenario:
    return replace(scenario, training=replace(scenario.training_spec, **changes))


def _with_optimizer(scenario: Scenario, **changes: Any) -> Scenario:
    return _with_training(scenario, optimizer=replace(scenario.training_spec.optimizer, **changes))


def _clip_differs(pair: Pair) -> bool:
    a, b = pair.a.training, pair.b.training
    return a is not None and b is not None and a.loss in CROSS_ENTROPIES and a.clip != b.clip


def _learning_rate_differs(pair: Pair) -> bool:
    a, b = pair.a.training, pair.b.training
    return a is not None and b is not None and a.optimizer.learning_rate != b.optimizer.learning_rate


def _reference_in(result: ScenarioResult, convention: str) -> Scenario:
    """The scenario of the reference run in ``convention`` (the run's own object when it ran, so
    its trajectory is reused)."""
    label = reference_in(convention)
    return result.scenario_for(label) if label in result.frameworks else with_convention(result.scenario, convention)


def _float64_control(pair: Pair) -> list[Control]:
    c = pair.comparison
    return [Control(f"{c.a} vs {c.b} in float64 (same scenario on each side)", "float64", pair.a, pair.b)]


def _convention_control(pair: Pair) -> list[Control]:
    """What a convention difference rests on (as ``harness.run.runner.convention_confirmed``), none
    of it the code it explains: each framework side against the reference in its convention, and a
    reference side against each framework computing its convention (one whose dtype rule the runner
    confirmed: its control run with the rule off); and each convention's reference run
    against that convention's update rule computed independently. A framework side cannot run the
    other's convention, and the reference re-run in the other side's convention is the other
    side's own code when that side is the reference too: neither is evidence. Empty when no
    framework computes either convention."""
    c, result = pair.comparison, pair.result
    bridges: dict[str, Control] = {}
    rules: dict[str, Scenario] = {}
    for label, scenario in ((c.a, pair.a), (c.b, pair.b)):
        convention = pair.run(label).convention
        if framework_of(label) == REFERENCE:
            reference, reference_scenario, sides = label, scenario, in_convention(result, convention, c.dtype)
        else:
            reference, reference_scenario, sides = reference_in(convention), _reference_in(result, convention), [label]
        rules.setdefault(reference, reference_scenario)
        for side in sides:
            run_as, what = side, side
            # a framework computing a reference side's convention whose dtype rule the runner confirmed:
            # its control run with the rule off (a framework side's rule is a cause of its own, below)
            if side != label and (side, c.dtype) in result.rules:
                run_as = control_label(side)
                what = f"{side} with {adapter(framework_of(side)).narrowing_rule} off"
            description = f"{what} vs {reference} ({c.dtype})"
            bridges.setdefault(description, Control(description, c.dtype, result.scenario_for(run_as),
                                                    reference_scenario, frameworks=(run_as, reference), drift_ok=True))
    if not bridges:
        return []
    first, *others = bridges.values()
    return [replace(first, also=tuple(others), rules=tuple(rules.items()))]


def _narrowed_sides(pair: Pair) -> list[str]:
    """The sides whose framework has a narrowing rule and whose run narrowed operations."""
    c = pair.comparison
    return [label for label in (c.a, c.b) if narrowed(label, pair.run(label))]


def _rule_control(pair: Pair) -> list[Control]:
    """The bridge with each narrowing side's rule turned off: that side's control run (the runner's,
    ``control_label``, reused when it ran) against the reference in its convention, and the other
    side against the reference in its own (both must agree: then the rule, with any convention
    difference the reference computes, is the whole difference)."""
    c, result = pair.comparison, pair.result
    narrowing = _narrowed_sides(pair)
    bridges = []
    # a narrowing side first: the first control's description is the diagnosis' summary
    for label, scenario in sorted(((c.a, pair.a), (c.b, pair.b)), key=lambda side: side[0] not in narrowing):
        if framework_of(label) == REFERENCE:
            continue
        reference = bridge_of(result, label, c.dtype)
        if reference is None:  # the reference did not run: no bridge
            return []
        side, what = label, label
        if label in narrowing:
            side, what = control_label(label), f"{label} with {adapter(framework_of(label)).narrowing_rule} off"
            scenario = result.sides.get(side) or replace(scenario, keep_64_bit=True)
        bridges.append(Control(f"{what} vs {reference} ({c.dtype})", c.dtype, scenario, result.scenario_for(reference),
                               frameworks=(side, reference), drift_ok=True))
    # the references of a convention difference, each against its convention's rule (as the convention's control)
    rules = tuple((b.frameworks[1], b.scenario_b) for b in bridges
                  if b.frameworks is not None and convention_of(b.frameworks[1]) is not None)
    first, *others = bridges
    return [replace(first, also=tuple(others), rules=rules)]


CROSS_ENTROPIES = ("binary_crossentropy", "categorical_crossentropy")

CAUSES: tuple[Cause, ...] = (
    Cause(
        name="optimizer convention",
        explanation="the two sides update with different optimizer formulas of the same name "
                    "(e.g. Adam's epsilon added after vs before the bias correction)",
        applies=lambda p: "common" not in (p.run(p.comparison.a).convention, p.run(p.comparison.b).convention)
        and bool(p.run(p.comparison.a).convention) and bool(p.run(p.comparison.b).convention)
        and p.run(p.comparison.a).convention != p.run(p.comparison.b).convention,
        controls=_convention_control,
    ),
    Cause(
        name="cross-entropy clipping",
        explanation="the two sides guard log(p) differently (Keras clips p to [1e-7, 1 - 1e-7], "
                    "torch clamps log p at -100, the labs do not guard)",
        applies=_clip_differs,
        controls=lambda p: _align(p, "clip", lambda s: s.training_spec.clip,
                                  lambda s, v: _with_training(s, clip=v)),
    ),
    Cause(
        name="learning rate",
        explanation="the two sides train with different learning rates",
        applies=_learning_rate_differs,
        controls=lambda p: _align(p, "learning rate", lambda s: s.training_spec.optimizer.learning_rate,
                                  lambda s, v: _with_optimizer(s, learning_rate=v)),
    ),
    # a framework's own dtype rule, confirmed by its control run with the rule off
    Cause(name="backend dtype rule", explanation="a side's framework returns 32-bit results from some 64-bit "
                                                 "operations (its dtype rule), so part of a float64 run is computed "
                                                 "in float32", applies=lambda p: bool(_narrowed_sides(p)),
          controls=_rule_control),
    # a property of the frameworks' autograd, measured without their code (harness.judge.guard_at_zero)
    Cause(name=guard_at_zero.NAME, explanation=guard_at_zero.EXPLANATION, check=guard_at_zero.check),
    # measured defects (harness.judge.findings), before float32 growth: a float32 run computed in
    # float64 agrees with float64 too, and is a defect, not drift
    Cause(name="computed in another dtype", explanation="a side computed with tensors of another dtype than the run's",
          check=findings.computed_dtype),
    Cause(name="initial parameters", explanation="a side did not start from the declared initial parameters",
          check=findings.initial_parameters),
    Cause(name="batch contents", explanation="a side trained a step on other rows than the plan's batch",
          check=findings.batch_rows),
    Cause(name="accumulated gradients", explanation="a side's gradients are not reset between steps",
          check=findings.accumulated_gradients),
    Cause(name="record one step late", explanation="a side writes its parameters to the record before its update",
          check=findings.record_late),
    Cause(name="effective learning rate", explanation="a side updates with another learning rate than the "
                                                      "declared one (measured as update / gradient)",
          check=findings.effective_learning_rate),
    Cause(name="weight decay", explanation="a side's update has an extra term proportional to the weights",
          check=findings.weight_decay),
    Cause(name="activation applied", explanation="a side's layer applies another activation than the declared one",
          check=findings.activation_applied),
    Cause(name="kernel layout", explanation="a side's layer reads its kernel in another layout than it holds",
          check=findings.kernel_layout),
    Cause(name="activation derivative", explanation="a side's backpropagation takes an activation's derivative "
                                                    "at the wrong point or in a wrong form",
          check=findings.activation_derivative),
    Cause(name="cross-entropy guard applied", explanation="a side's loss guards log(p) otherwise than declared",
          check=findings.clip_applied),
    Cause(name="computed in float32", explanation="a side computed part of a float64 step in single precision",
          check=findings.float32_values),
    Cause(name="rate applied to the gradient", explanation="a side scales its gradient by the learning rate (or "
                                                           "momentum) before the step",
          check=findings.gradient_scaled),
    Cause(name="constant factor", explanation="one side's values are a constant multiple of the other's",
          check=findings.constant_factor),
    Cause(
        name="float32 rounding growth",
        explanation="single-precision rounding (eps 1.2e-7) in different operation orders, grown "
                    "over the steps; the same computations in float64 agree",
        applies=lambda p: p.comparison.dtype == "float32",
        controls=_float64_control,
    ),
)


@dataclass
class ControlRun:
    control: Control
    comparison: Comparison | None
    fraction: float = 0.0  # the largest fraction of its tolerance the control pair uses
    message: str = ""  # why the control could not decide (a run crashed or was skipped)
    also: list["ControlRun"] = field(default_factory=list)  # the control's further pairs
    checks: list[RuleCheck] = field(default_factory=list)  # its reference runs against their update rules
    applicable: bool = True  # False: a side cannot run the control (a convention it cannot compute)

    @property
    def agrees(self) -> bool:
        """The control confirms its cause: it agrees at every step and does not drift either
        (nor does any of its further pairs)."""
        return (self.comparison is not None and self.comparison.agree
                and (self.fraction < DRIFT_FRACTION or self.control.drift_ok) and all(r.agrees for r in self.also)
                and all(check.ok for check in self.checks))

    @property
    def summary(self) -> str:
        """What confirmed the cause, in a few words (a ``Finding`` has the same): the control's pair,
        and the reference runs checked against their conventions' update rules, if any."""
        checked = [x.label for x in self.checks]
        return self.control.description + (f"; {_names(checked)} against {'its' if len(checked) == 1 else 'their'} "
                                           "convention's update rule, computed independently" if checked else "")

    def describe(self) -> str:
        if self.comparison is None:
            state = "inconclusive" if self.applicable else "not applicable"
            text = f"{self.control.description}: {state} ({self.message})"
        else:
            c = self.comparison
            if not c.agree:
                verdict = f"still disagree from step {c.first_divergent_step}"
            else:
                verdict = ("agree" if self.fraction < DRIFT_FRACTION
                           else "agree (drifting, diagnosed on its own)" if self.control.drift_ok
                           else "agree but still drift")
            text = (f"{self.control.description}: {verdict} (max |a - b| {c.max_abs:.2e}, at worst "
                    f"{self.fraction:.2g} x the tolerance rtol {c.rtol:g}, atol {c.atol:g})")
        return "; and ".join([text] + [r.describe() for r in self.also] + [x.describe() for x in self.checks])


def _run_side(result: ScenarioResult, label: str, scenario: Scenario, dtype: str, plan: TrainingPlan,
              progress: Progress | None) -> Trajectory:
    existing = result.runs.get((label, dtype))
    if existing is not None and scenario is result.scenario_for(label):
        return existing  # this side already ran exactly this
    start = time.perf_counter()
    run = run_framework(framework_of(label), side_plan(plan, scenario))
    run.framework = label
    if progress is not None:
        progress(f"{result.scenario.name} x {label} ({dtype}): control run {run.status}, "
                 f"{run.steps} steps, {time.perf_counter() - start:.1f} s")
    return run


def run_control(result: ScenarioResult, control: Control, *, frameworks: tuple[str, str],
                progress: Progress | None = None) -> ControlRun:
    frameworks = control.frameworks or frameworks
    also = [run_control(result, other, frameworks=frameworks, progress=progress) for other in control.also]
    for label, scenario in zip(frameworks, (control.scenario_a, control.scenario_b)):
        try:  # a convention this side's optimizer classes cannot compute: the control does not apply
            check_runnable(scenario, frameworks=(framework_of(label),), dtypes=(control.dtype,))
        except BadInput as exc:  # e.g. "... can express (torch.optim.Adam computes the 'torch' convention)"
            why = exc.expected.split(" (", 1)[-1].rstrip(")")
            return ControlRun(control, None, message=f"{why}, not {exc.received!r}", also=also, applicable=False)
    plan = result.plans.get(control.dtype) or make_plan(result.scenario, control.dtype)
    runs = [_run_side(result, fw, s, control.dtype, plan, progress)
            for fw, s in zip(frameworks, (control.scenario_a, control.scenario_b))]
    failed = [r for r in runs if not r.ok]
    if failed:
        return ControlRun(control, None, message="; ".join(f"{r.framework} {r.status}: {r.message}" for r in failed),
                          also=also)
    comparison = compare(runs[0], runs[1], result.scenario.tolerances[control.dtype])
    checks = [_rule_check(result, label, scenario, control.dtype, plan, progress) for label, scenario in control.rules]
    return ControlRun(control, comparison, 0.0 if comparison.closest is None else comparison.closest[2], also=also,
                      checks=checks)


def _rule_check(result: ScenarioResult, label: str, scenario: Scenario, dtype: str, plan: TrainingPlan,
                progress: Progress | None) -> RuleCheck:
    """The reference run ``label`` (of ``scenario``) against its convention's update rule: the
    runner's check when that run was made, else the run made (``_run_side``) and checked here."""
    if (label, dtype) in result.rule_checks and scenario is result.scenario_for(label):
        return result.rule_checks[(label, dtype)]
    return check_rule(label, _run_side(result, label, scenario, dtype, plan, progress), scenario,
                      result.scenario.tolerances[dtype])


@dataclass
class Diagnosis:
    """``kind``: ``disagree`` (diagnosed at the first divergent step) or ``drift`` (an agreeing
    pair diagnosed at the step where it uses the largest fraction of its tolerance)."""

    comparison: Comparison
    kind: str
    step: int
    quantity: str
    fraction: float  # of the tolerance used by ``quantity`` at ``step`` (> 1 beyond it)
    localisation: Localisation
    cause: Cause | None = None
    confirmed_by: ControlRun | Finding | None = None  # the agreeing control run, or the measurement
    controls: list[ControlRun] = field(default_factory=list)  # every control run tried, in order
    # Who is suspected in the pair's dtype: set for a disagreeing pair (the odd one out when it is a
    # side of this pair, else "no majority"); None for a drift or a pair that differs, explained.
    suspect: Suspect | None = None
    # for an optimizer convention that bundles a formula with different default options: how
    # much each part contributes on its own (``contributions``)
    contributions: list[Contribution] = field(default_factory=list)

    @property
    def cause_name(self) -> str:
        return self.cause.name if self.cause else NO_CAUSE

    @property
    def stage(self) -> str | None:
        """Where within the step the difference shows first (``Localisation.stage``)."""
        return self.localisation.stage


def name_cause(pair: Pair, *, evidence: Evidence | None = None, causes: tuple[Cause, ...] = CAUSES,
               progress: Progress | None = None) -> tuple[Cause | None, ControlRun | Finding | None, list[ControlRun]]:
    """The first applicable cause confirmed by its check (on ``evidence``) or by an agreeing control
    run, with every control run tried."""
    c, tried = pair.comparison, list[ControlRun]()
    for cause in causes:
        if not cause.applies(pair):
            continue
        if cause.check is not None:
            found = None if evidence is None else cause.check(evidence)
            if found is not None:
                return cause, found, tried
        for control in cause.controls(pair):
            outcome = run_control(pair.result, control, frameworks=(c.a, c.b), progress=progress)
            tried.append(outcome)
            if outcome.agrees:
                return cause, outcome, tried
            # inconclusive, or still disagrees (e.g. an adapter that cannot take the other side's
            # setting): try the cause's next control; when none agrees the cause is not named
    return None, None, tried


@dataclass(frozen=True)
class Contribution:
    """One part of a convention difference, measured alone: a reference run against the reference
    changed in only that part."""

    part: str  # e.g. "the torch formula with Keras' default epsilon 1e-7"
    dtype: str
    loss_gap: float  # max |a - b| of the loss over the steps
    params_gap: float  # max |a - b| of the final parameters
    against: str = "the Keras convention's"  # the reference run it is measured against

    def describe(self) -> str:
        return (f"{self.part} ({self.dtype}): the loss differs from {self.against} by up to "
                f"{self.loss_gap:.2g}, the final parameters by {self.params_gap:.2g}")


def bundled_defaults(scenario: Scenario) -> dict[str, tuple[float, float]]:
    """The optimizer options the scenario leaves at defaults that differ between the Keras and
    torch conventions (option -> (keras default, torch default))."""
    if scenario.training is None:
        return {}
    spec = scenario.training.optimizer
    keras, torch = DEFAULTS[spec.name]["keras"], DEFAULTS[spec.name]["torch"]
    return {k: (keras[k], torch[k]) for k in keras if k not in spec.options and keras[k] != torch[k]}


def contributions(result: ScenarioResult, dtype: str, *, progress: Progress | None = None) -> list[Contribution]:
    """Separate a convention difference into its parts, each changed alone:

    * the whole: the reference in the torch convention against the Keras convention's;
    * in float64, where Keras on TensorFlow rounds a hyper-parameter to float32 (SGD's momentum,
      Adam's betas): the Keras formula unrounded (``keras-unrounded``) against the Keras
      convention's, what that rounding alone costs; the parts below are then measured against the
      unrounded Keras formula, so that none of them carries the rounding;
    * the torch formula (with Keras' defaults, when the convention bundles other defaults), the
      formula alone;
    * the Keras formula with torch's default of each bundled option, that default alone.

    Empty when there is nothing to separate (the formula is the whole difference)."""
    bundled = bundled_defaults(result.scenario)
    rounding = None if dtype != "float64" else difference(result.scenario.training_spec.optimizer, "keras",
                                                          "keras-unrounded")
    if not bundled and rounding is None:
        return []
    plan = result.plans.get(dtype) or make_plan(result.scenario, dtype)

    def run(convention: str, scenario: Scenario | None = None) -> Trajectory:
        """The reference run in ``convention`` (reused when it ran), or ``scenario`` labelled so."""
        return _run_side(result, reference_in(convention), scenario or _reference_in(result, convention), dtype,
                         plan, progress)

    def changed(convention: str, options: dict[str, float]) -> Trajectory:
        """The reference run in ``convention`` with some options changed (the run itself: none)."""
        if not options:
            return run(convention)
        side = _reference_in(result, convention)
        return run(convention, _with_optimizer(side, options={**side.training_spec.optimizer.options, **options}))

    keras_run = run("keras")
    parts = [("the torch convention (its formula and its defaults)", run("torch"), keras_run,
              "the Keras convention's")]
    base_convention, against = ("keras", "the Keras convention's") if rounding is None else \
        ("keras-unrounded", "the Keras formula unrounded")
    base = run(base_convention)
    if rounding is not None:
        parts.append((f"the Keras formula unrounded (keras-unrounded: {rounding})", base, keras_run,
                      "the Keras convention's"))
    keras_defaults = {k: keras for k, (keras, _) in bundled.items()}
    defaults = ", ".join(f"{k} {number(v)}" for k, v in keras_defaults.items())
    parts.append((f"the torch formula with Keras' default {defaults}" if bundled else "the torch formula",
                  changed("torch", keras_defaults), base, against))
    for k, (_, torch_default) in bundled.items():
        parts.append((f"the Keras formula with torch's default {k} {number(torch_default)}",
                      changed(base_convention, {k: torch_default}), base, against))
    out = []
    for part, other, reference, name in parts:
        if not (reference.ok and other.ok):
            continue
        final = max((float(np.max(difference_of(reference.final_params[p], other.final_params[p])))
                     for p in reference.final_params), default=0.0)
        loss = (float(np.max(difference_of(reference.losses, other.losses))) if reference.steps == other.steps
                else float("inf"))
        out.append(Contribution(part, dtype, loss, final, name))
    return out


def diagnose(result: ScenarioResult, *, progress: Progress | None = None) -> list[Diagnosis]:
    """A diagnosis for every pair that disagrees or drifts (uses >= DRIFT_FRACTION of its tolerance)."""
    out: list[Diagnosis] = []
    cache: Traces = {}
    for c in result.comparisons:
        if c.faults and c.agree:  # within the tolerance, and still a side is not a run of the pair's dtype
            kind, step, quantity = "disagree", 0, "computed dtype"
            fraction = 0.0 if c.closest is None else c.closest[2]
        elif c.agree:
            if c.closest is None or c.closest[2] < DRIFT_FRACTION:
                continue
            kind, (step, quantity, fraction) = "drift", c.closest
        else:
            assert c.first_divergent_step is not None, "a pair that disagrees has a first divergent step"
            kind, step = "disagree", c.first_divergent_step
            quantity = c.mismatch.quantity if c.mismatch else "steps"
            fraction = c.mismatch.diff / c.mismatch.allowed if c.mismatch and c.mismatch.allowed else float("inf")
        pair = Pair(result, c)
        localisation = localise(result, c, step, progress=progress, cache=cache)
        evidence = _evidence(result, c, step, localisation, cache)
        # runs that agree until one stops: nothing differs at a step both made for a cause to explain
        cause, confirmed_by, tried = (None, None, []) if localisation.early_stop else \
            name_cause(pair, evidence=evidence, progress=progress)
        out.append(Diagnosis(c, kind, step, quantity, fraction, localisation, cause, confirmed_by, tried))
    separated: dict[str, list[Contribution]] = {}
    for d in out:
        if d.cause is not None and d.cause.name == "optimizer convention":
            if d.comparison.dtype not in separated:
                separated[d.comparison.dtype] = contributions(result, d.comparison.dtype, progress=progress)
            d.contributions = separated[d.comparison.dtype]
    localisations = {id(d.comparison): d.localisation for d in out}
    for dtype in result.dtypes:
        found = suspects(result, dtype, localisations=localisations)
        named = [x for x in found if x.label is not None]
        for d in out:
            c = d.comparison
            if c.dtype != dtype or c.state != DISAGREE or not found:
                continue
            labels = {c.a, c.b, framework_of(c.a), framework_of(c.b)}
            sides = [x for x in named if x.label in labels]
            # a pair with neither side suspected rests on the one suspect (e.g. the reference in a
            # convention, which explained it); else the no-majority reason
            d.suspect = sides[0] if len(sides) == 1 else next((x for x in found if x.label is None),
                                                               named[0] if len(named) == 1 else None)
            if len(sides) == 2:  # two suspects against each other: each already differs from the majority
                others = f" from {_names(list(sides[0].others))}, which agree" if sides[0].others else ""
                d.suspect = Suspect(dtype, None, sides[0].others, None, None,
                                    f"both {sides[0].label} and {sides[1].label} differ{others}: suspects "
                                    f"{sides[0].label} and {sides[1].label}")
    return out


def _evidence(result: ScenarioResult, c: Comparison, step: int, localisation: Localisation,
              traces: Traces) -> Evidence | None:
    """What the measured causes look at; None for a forward-only scenario or a run that failed."""
    runs = {label: result.runs.get((label, c.dtype)) for label in (c.a, c.b)}
    plan = result.plans.get(c.dtype)
    if plan is None or not result.scenario.trains or any(r is None or not r.ok for r in runs.values()):
        return None
    return Evidence(a=c.a, b=c.b, dtype=c.dtype, step=step, stage=localisation.stage,
                    runs={k: v for k, v in runs.items() if v is not None},
                    scenarios={label: result.scenario_for(label) for label in (c.a, c.b)},
                    traces={label: traces[(label, c.dtype, step)] for label in (c.a, c.b)
                            if (label, c.dtype, step) in traces},
                    plan=side_plan(plan, result.scenario_for(c.a)), tolerance=result.scenario.tolerances[c.dtype])


# --- the odd one out ------------------------------------------------------------

@dataclass(frozen=True)
class Suspect:
    """Who a disagreement in ``dtype`` points at: ``label`` (an implementation, e.g. ``torch``)
    when it disagrees with every other implementation and those agree among themselves (states
    ``agree`` or ``differ, explained``), else None: no majority, and ``reason`` says why."""

    dtype: str
    label: str | None
    others: tuple[str, ...]  # the implementations that agree among themselves (empty: no majority)
    step: int | None  # the suspect's first divergent step against any of the others
    stage: str | None  # where within that step the difference shows (``Localisation.stage``)
    reason: str

    def describe(self) -> str:
        return self.reason


def _names(labels: list[str] | tuple[str, ...]) -> str:
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


def suspects(result: ScenarioResult, dtype: str, *,
             localisations: Mapping[int, Localisation] | None = None) -> list[Suspect]:
    """Who the disagreements of ``dtype`` point at; empty when no pair of ``dtype`` disagrees.

    The largest group of implementations that agree among themselves (states ``agree`` or
    ``differ, explained``) is the majority when it holds more than half of them and every other
    implementation disagrees with each of its members: each of those others is a suspect (one
    ``Suspect`` each, e.g. torch; or keras@jax and keras@torch beside numpy, keras and torch).
    Otherwise one ``Suspect`` with no label says why there is no majority. Implementations are
    frameworks: the reference's runs in each optimizer convention (``numpy[keras]``,
    ``numpy[torch]``) count as one, ``numpy``, whose pair with another framework disagrees when
    any of their compared runs do. ``localisations`` (by ``id`` of the comparison, as
    ``diagnose`` makes them) give the stage of each suspect's first divergence.

    Within an optimizer convention the reference's run in it is checked against the convention's
    update rule computed independently (``ScenarioResult.rule_checks``): a run that fails its check
    is the suspect (e.g. ``numpy[keras]``), whatever the majority says, since the other convention's
    reference would otherwise outvote it. When a convention is computed only by the reference and
    one framework, they disagree and the check did not reach the step where they do, nothing
    decides between them: that framework is not named, and the no-majority reason says which
    implementation would break the tie."""
    compared = [c for c in result.comparisons if c.dtype == dtype and framework_of(c.a) != framework_of(c.b)]
    disagreeing = [c for c in compared if c.state == DISAGREE]
    if not disagreeing:
        return []
    wrong_rule = [check for (_, dt), check in result.rule_checks.items() if dt == dtype and check.failed]
    if wrong_rule:  # the reference in a convention is not that convention's rule: that run is the suspect
        return [Suspect(dtype, check.label, (), check.bad_step, f"updated {check.quantity}",
                        f"{check.describe()}: suspect {check.label}, from step {check.bad_step} at "
                        f"`updated {check.quantity}`") for check in wrong_rule]
    found = _majority(result, dtype, compared, disagreeing, localisations)
    undecided = _undecided_conventions(result, dtype, disagreeing)
    return [x for x in found if x.label not in undecided] + list(undecided.values())


CONVENTION_NAMES = {"keras": "the Keras convention", "keras-unrounded": "the Keras convention unrounded",
                    "torch": "the torch convention"}


def _undecided_conventions(result: ScenarioResult, dtype: str, disagreeing: list[Comparison]) -> dict[str, Suspect]:
    """framework -> a no-majority ``Suspect``, for each framework that alone computes a convention
    beside the reference in it, disagrees with it, and whose disagreement the reference's check
    against the convention's rule (``rule_checks``) did not reach: which of the two is wrong
    within that convention, nothing here can tell."""
    out = {}
    spec = result.scenario.training.optimizer if result.scenario.training is not None else None
    for c in disagreeing:
        reference, other = (c.a, c.b) if convention_of(c.a) else (c.b, c.a)
        convention = convention_of(reference)
        if convention is None or convention_of(other) or spec is None:
            continue
        check = result.rule_checks.get((reference, dtype))
        step = c.first_divergent_step if c.first_divergent_step is not None else 0
        if (check is not None and check.covers(step)) or in_convention(result, convention, dtype) != [other]:
            continue
        ran = {framework_of(label) for label in result.frameworks}
        family = formulas(convention)
        tie = [fw for fw in ALL_FRAMEWORKS if fw not in ran and fw != REFERENCE
               and adapter(fw).native_convention(spec) in CONVENTIONS
               and formulas(adapter(fw).native_convention(spec)) == family]
        breaker = (f"run with --frameworks all: {_names(tie)} compute{'s' if len(tie) == 1 else ''} "
                   f"{OWNERS[family]} formulas too" if tie else
                   "no other implementation here computes its formulas")
        reach = ("the reference could not be checked against the convention's rule" if check is None else
                 f"the check of {reference} against {check.rule} reaches step {check.steps - 1} only "
                 f"({check.message or 'its budget'}), the difference is at step {step}")
        out[other] = Suspect(dtype, None, (), step, None,
                             f"no majority within {CONVENTION_NAMES.get(convention, convention)} ({reference} vs "
                             f"{other}): only they compute it here and {reach}; to break the tie, {breaker}")
    return out


def _majority(result: ScenarioResult, dtype: str, compared: list[Comparison], disagreeing: list[Comparison],
              localisations: Mapping[int, Localisation] | None) -> list[Suspect]:
    """The majority rule of ``suspects`` over the implementations (the reference as one)."""
    implementations = list(dict.fromkeys(framework_of(label) for label in result.frameworks
                                         if result.runs.get((label, dtype)) is not None
                                         and result.runs[(label, dtype)].ok))
    states: dict[frozenset[str], bool] = {}  # framework pair -> disagrees
    for c in compared:
        key = frozenset((framework_of(c.a), framework_of(c.b)))
        states[key] = states.get(key, False) or c.state == DISAGREE
    bad = ["-".join(sorted(k, key=implementations.index)) for k, v in states.items() if v]
    if len(implementations) < 3:
        return [Suspect(dtype, None, (), None, None,
                        f"no majority in {dtype}: only two implementations ({_names(implementations)}), "
                        "so their disagreement cannot say which one is wrong")]
    complete = all(frozenset((x, y)) in states for i, x in enumerate(implementations)
                   for y in implementations[i + 1:])
    majority: tuple[str, ...] = ()
    if complete:
        for size in range(len(implementations) - 1, len(implementations) // 2, -1):  # more than half
            groups = [g for g in itertools.combinations(implementations, size)
                      if not any(states[frozenset((x, y))] for x, y in itertools.combinations(g, 2))
                      and all(states[frozenset((o, m))] for o in implementations if o not in g for m in g)]
            if len(groups) == 1:
                majority = groups[0]
                break
            if groups:  # two equally large groups: no majority
                break
    if not majority:
        why = (f"not every pair of {_names(implementations)} was compared" if not complete else
               f"no group of more than half of {_names(implementations)} agrees among itself while each "
               "other one differs from all of its members")
        return [Suspect(dtype, None, (), None, None,
                        f"no majority in {dtype}: {why} (disagreeing pairs: {', '.join(bad)})")]
    out = []
    odd_ones = [x for x in implementations if x not in majority]
    for odd in odd_ones:
        mine = [c for c in disagreeing if {framework_of(c.a), framework_of(c.b)} & {odd}
                and {framework_of(c.a), framework_of(c.b)} & set(majority)]  # against the majority
        first = min(mine, key=lambda c: c.first_divergent_step if c.first_divergent_step is not None else 0)
        step = first.first_divergent_step if first.first_divergent_step is not None else 0  # 0: a dtype fault
        loc = (localisations or {}).get(id(first))
        stage = None if loc is None else loc.stage
        where = f"from step {step}" + (f" at `{stage}`" if stage else "")
        also = [x for x in odd_ones if x != odd]
        differs = f"{odd} differs" if not also else f"{odd} (as {_names(also)}) differs"
        out.append(Suspect(dtype, odd, majority, step, stage,
                           f"{differs} from {_names(list(majority))}, which agree: suspect {odd}, {where}"))
    return out


def suspect(result: ScenarioResult, dtype: str, *,
            localisations: Mapping[int, Localisation] | None = None) -> Suspect | None:
    """The one suspect (or the no-majority reason) of ``dtype`` when there is exactly one
    (``suspects``); None when nothing disagrees."""
    found = suspects(result, dtype, localisations=localisations)
    return found[0] if found else None
