"""A framework's run accounted for by a real property of its framework (a cause of the registry marked
``property``, e.g. ``autograd at a clamped log(0)``), measured without running the framework's code.

A framework run that disagrees with the reference run in its own convention is accounted for by a
property when, at the pair's first divergent step ``k`` (every earlier step agrees):

* the framework's run leaves the finite numbers at ``k`` and every element of its parameters is, at
  every recorded step from ``k`` on, nan or inf, or finite and within the agreement rule of the
  reference's same element (``nonfinite_from``), so nothing finite after ``k`` goes uncompared (a run
  that came back to finite numbers could hide anything there);
* the step's forward pass agrees: the two sides' traces of step ``k`` give the same loss and layer
  outputs within the agreement rule (what differs first is the backward pass);
* a property's check (``Cause.check``, on the pair's traces of step ``k``) returns a ``Finding``
  that points at the framework's side.

The pair then differs, explained (``harness.judge.explain``), as by a convention or a dtype rule,
in ``nn-parity run`` and in the fuzzer alike (one judgement: ``ScenarioResult.properties``), and a
convention whose frameworks are accounted for this way is confirmed by its reference run's
independent update-rule check (``harness.judge.textbook``) and their agreement before ``k``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.judge.causes.evidence import Evidence, Trace, agree
from harness.judge.causes.registry import PROPERTIES, Cause
from harness.judge.compare import compare
from harness.judge.controls import Pair
from harness.judge.result import ScenarioResult
from harness.judge.runs import Runs
from harness.run.labels import framework_of
from harness.run.plan import side_plan
from harness.run.trajectory import Trajectory
from harness.spec.tolerance import Tolerance, compare_elements


@dataclass(frozen=True)
class Property:
    """``label``'s run differs from ``reference``'s by ``cause``, a property of its framework, from
    ``step`` on, as its check measured (the diagnosis of the pair quotes that measurement)."""

    label: str
    reference: str
    dtype: str
    step: int
    cause: Cause
    measured: str = ""  # what the measurement found, as the diagnosis quotes it

    def describe(self) -> str:
        """The phrase a pair's ``differences`` and the bridges' control runs quote."""
        return f"{self.label}: {self.cause.name} from step {self.step} (confirmed by measurement)"


def nonfinite_from(run: Trajectory, step: int, *, reference: Trajectory | None = None,
                   tolerance: Tolerance | None = None) -> bool:
    """The run leaves the finite numbers at ``step`` and, from there to its end, every parameter element is
    non-finite, or (given the reference's run and the agreement rule) finite and agreeing with the reference's
    same element at the same step: what stays finite (e.g. a unit whose gradient autograd's select keeps at
    exactly 0) is still compared, so nothing finite goes unjudged."""
    if run.first_nonfinite_step != step:
        return False
    for name, values in run.params.items():
        after = values[step:]
        finite = np.isfinite(after)
        if not finite.any():
            continue
        theirs = None if reference is None else reference.params.get(name)
        if tolerance is None or theirs is None or theirs.shape != values.shape:
            return False
        with np.errstate(all="ignore"):
            if compare_elements(after[finite], theirs[step:][finite], tolerance).bad.any():
                return False
    return True


def forward_agrees(trace_a: Trace, trace_b: Trace, e: Evidence) -> bool:
    """The step's loss and every layer's outputs are in both traces and agree within the agreement rule."""
    stages = [stage for stage in trace_a if stage == "loss" or stage.startswith("output ")]
    return bool(stages) and all(stage in trace_b and agree(trace_a[stage], trace_b[stage], e.tolerance)
                                for stage in stages)


def property_of(result: ScenarioResult, label: str, reference: str, dtype: str, runs: Runs) -> Property | None:
    """The property of ``label``'s framework that accounts for its run against ``reference``'s (module
    docstring); None when none does. Traces the pair's first divergent step only when a property applies."""
    c = result.pair(label, reference, dtype)
    run, plan = result.runs.get((label, dtype)), result.plans.get(dtype)
    if (c is None or c.agree or c.faults or c.first_divergent_step is None or run is None or not run.ok
            or plan is None or not result.scenario.trains or not result.runs[(reference, dtype)].ok):
        return None
    step = c.first_divergent_step
    pair = Pair(result, c, runs)
    causes = [cause for cause in PROPERTIES if cause.applies(pair)]
    for cause in causes:
        if cause.reproduce is not None and (measured := reproduced(cause, result, label, reference, dtype, step,
                                                                    runs)):
            return Property(label, reference, dtype, step, cause, measured)
    causes = [cause for cause in causes if cause.check is not None]
    if not causes or step >= min(c.steps_a, c.steps_b) or not nonfinite_from(
            run, step, reference=result.runs[(reference, dtype)], tolerance=result.scenario.tolerances[dtype]):
        return None
    sides = (c.a, c.b)
    try:
        traces = {side: runs.trace(framework_of(side), side_plan(plan, result.scenario_for(side)), step)
                  for side in sides}
    except Exception:  # a crash while tracing: nothing measured, nothing accounted (the diagnosis reports it)
        return None
    evidence = Evidence(a=c.a, b=c.b, dtype=dtype, step=step, stage=None,
                        runs={side: result.runs[(side, dtype)] for side in sides},
                        scenarios={side: result.scenario_for(side) for side in sides}, traces=traces,
                        plan=side_plan(plan, result.scenario_for(c.a)), tolerance=result.scenario.tolerances[dtype],
                        run_floor=runs)
    if not forward_agrees(evidence.traces[c.a], evidence.traces[c.b], evidence):
        return None
    for cause in causes:
        assert cause.check is not None
        with np.errstate(all="ignore"):
            found = cause.check(evidence)
        if found is not None and found.side == label:
            return Property(label, reference, dtype, step, cause)
    return None


def reproduced(cause: Cause, result: ScenarioResult, label: str, reference: str, dtype: str, step: int,
               runs: Runs) -> str | None:
    """What was measured when ``label``'s run agrees, at every recorded step, with the reference's run
    made again in NumPy with the property acting (``Cause.reproduce``), and the reference's own run does
    not (the property is what parts them); None otherwise."""
    assert cause.reproduce is not None
    plan, tolerance = side_plan(result.plans[dtype], result.scenario_for(reference)), result.scenario.tolerances[dtype]
    try:
        made = cause.reproduce(runs, label, plan, step)
    except Exception:  # the measurement failed: nothing measured, nothing accounted
        return None
    if made is None or not made.ok:
        return None
    apart, together = compare(made, result.runs[(reference, dtype)], tolerance), compare(result.runs[(label, dtype)],
                                                                                         made, tolerance)
    if apart.agree or not together.agree:
        return None
    return (f"{label}'s run agrees at every step with {reference}'s made again with {cause.name} (NumPy, none of "
            f"{label}'s code; max |a - b| {together.max_abs:.2e}), which parts from {reference}'s own run at step "
            f"{apart.first_divergent_step}")
