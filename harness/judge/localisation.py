"""When and where two runs of a scenario part: how a pair's difference grows over training, and,
within the step a diagnosis looks at, the stage where it appears.

**When**: the first step and parameter whose difference crosses the tolerance
(``Comparison.mismatch``); a pair that agrees but comes within ``DRIFT_FRACTION`` of its tolerance
*drifts* and is looked at where it comes closest (``Comparison.closest``).

**Where within that step**: both implementations replay their own run up to that step and record it
stage by stage in data-flow order (``Adapter.trace_step``; stages named by
``harness.run.trajectory.trace_stages``). For each stage ``k`` the scale-free difference
``d_k = max_i |a_i - b_i| / max(|a_i|, |b_i|)`` and its rate of change against the previous stage::

    R_k = (d_k - d_{k-1}) / (d_{k-1} + floor)        (d_{-1} = 0)

with ``floor = r_floor(dtype)``: 1e-7, and never under 256 ulps of the dtype, so a few float32
roundings entering at a stage (d ~ 30 ulps ~ 3.5e-6: R = 35 with a 1e-7 floor) do not count as a
difference appearing there. The difference *appears* at the first stage with ``R_k > R_THRESHOLD``;
the first stage whose elements break the tolerance is reported beside it. A side whose replay does
not reproduce its own run points at its run loop (``RUN_LOOP``); runs that agree until one of them
stops early are localised at ``EARLY_STOP``, saying which side stopped when and whether the declared
rule fires.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from harness.judge.compare import Comparison
from harness.judge.result import ScenarioResult
from harness.judge.runs import Runs
from harness.run.labels import framework_of
from harness.run.plan import side_plan
from harness.run.progress import Progress
from harness.run.trajectory import Trajectory, trace_stages
from harness.spec.tolerance import Tolerance, compare_elements

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


RUN_LOOP = "the run loop"  # the stage named when a side's replay does not reproduce its own run


EARLY_STOP = "the early stop"  # the stage named when the runs agree until one of them stops


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


def localise(result: ScenarioResult, c: Comparison, step: int, *, runs: Runs, progress: Progress | None = None,
             cache: Traces | None = None) -> Localisation:
    """Trace ``step`` of the pair in both implementations and compare stage by stage (``cache``
    keeps traces across the pairs of one scenario: each framework replays a step once; ``runs`` makes the traces)."""
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
            traces[fw] = runs.trace(framework_of(fw), side_plan(plan, result.scenario_for(fw)), step)
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
