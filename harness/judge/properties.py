"""A framework's run accounted for by a real property of its framework (a cause of the registry marked
``property``, e.g. ``autograd at a clamped log(0)``), measured without running the framework's code.

A framework run that disagrees with the reference run in its own convention is accounted for by a
property when, at the pair's first divergent step ``k`` (every earlier step agrees):

* the framework's run leaves the finite numbers at ``k`` and every element of its parameters is, at
  every recorded step from ``k`` on, nan or inf, or finite and within the agreement rule of the
  reference's same element (``nonfinite_from``), so nothing finite after ``k`` goes uncompared (a run
  that came back to finite numbers could hide anything there); or it is non-finite but for elements
  the step's nan did not reach (``masked_from``: torch's ReLU backward gives a unit its ReLU
  switched off a gradient of exactly 0, nan or not; a batch's other rows, a softmax's other
  columns, keep finite gradients), which at ``k`` agree with the reference's, value and gradient,
  and after ``k`` take no gradient but 0 and keep their value, under a non-finite loss;
* the step's forward pass agrees: the two sides' traces of step ``k`` give the same loss and layer
  outputs within the agreement rule; or each side's is that of the parameters it entered the step
  with (``forward_own``: the reference's layers and loss on them), when those parameters differ by
  what the pair's comparison let agree before ``k``, its measured rounding ``R`` included (what
  differs first is the backward pass);
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
from harness.run.adapters.numpy_reference import build_network, layer_outputs
from harness.run.labels import framework_of
from harness.run.plan import side_plan
from harness.run.trajectory import Trajectory
from harness.spec.tolerance import Tolerance, compare_elements
from reference.losses import get_loss


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


def masked_from(run: Trajectory, reference: Trajectory, step: int, tolerance: Tolerance) -> bool:
    """The run leaves the finite numbers at ``step`` and stays out of them but for elements the step's
    nan did not reach: its loss is non-finite at every recorded step after ``step``; an element finite
    at a step from ``step`` on was finite at the step before; at ``step`` those elements agree with the
    reference run's, value and recorded gradient (the nan reached only some gradients: a ReLU's
    backward ``where(z <= 0, 0, grad)`` gives a unit it switched off 0, nan or not; a batch's rows
    where that unit is on, or a softmax over the batch axis' columns without a zero probability, give
    finite gradients, the reference's); after ``step`` they take a recorded gradient of exactly 0 (every
    gradient is the nan's or nothing) and keep their value, bit for bit. Nothing after ``step`` is left
    to compare but non-finite values and elements nothing moved. (An element an optimizer's state still
    moves after ``step``, momentum or Adam's moments under a zero gradient, is refused: those moves are
    checked by nothing here.)"""
    if run.first_nonfinite_step != step or not np.all(~np.isfinite(run.losses[step + 1:])):
        return False
    for name, values in run.params.items():
        grads, theirs, their_grads = run.grads.get(name), reference.params.get(name), reference.grads.get(name)
        if (grads is None or theirs is None or their_grads is None or len(grads) < len(values) or len(theirs) <= step
                or len(their_grads) <= step):
            return False
        kept = np.isfinite(values[step:])
        before = np.isfinite(np.concatenate([run.params_before(step)[name][None], values[step:-1]]))
        if (kept & ~before).any() or (kept[1:] & (grads[step + 1:len(values)] != 0)).any():
            return False
        if (kept[1:] & (values[step + 1:] != values[step][None])).any():  # moved after the step
            return False
        at = kept[0]
        if at.any() and any(bool(compare_elements(a[at], b[at], tolerance).bad.any())
                            for a, b in ((values[step], theirs[step]), (grads[step], their_grads[step]))):
            return False
    return True


def forward_agrees(trace_a: Trace, trace_b: Trace, e: Evidence) -> bool:
    """The step's loss and every layer's outputs are in both traces and agree within the agreement rule."""
    stages = [stage for stage in trace_a if stage == "loss" or stage.startswith("output ")]
    return bool(stages) and all(stage in trace_b and agree(trace_a[stage], trace_b[stage], e.tolerance)
                                for stage in stages)


def forward_own(e: Evidence, side: str) -> bool:
    """``side``'s forward pass at the step is that of the parameters it held: its trace's parameters are
    its run's entering the step, bit for bit, and its layer outputs and loss are those of the reference's
    layers and loss (NumPy, none of the framework's code) on them, within the agreement rule. (The two
    sides may hold parameters that differ: by what the pair's own comparison, its measured rounding
    ``R`` included, let agree at every earlier step; then their forward passes differ by that, and
    ``forward_agrees``' bare rule does not hold, though neither side's forward pass is at fault.)"""
    trace, scenario, run = e.traces[side], e.scenarios[side], e.runs[side]
    if scenario.training is None:
        return False
    entering = run.params_before(e.step)
    if set(entering) != {stage[len("params "):] for stage in trace if stage.startswith("params ")} or any(
            not np.array_equal(np.asarray(trace[f"params {name}"]), values) for name, values in entering.items()):
        return False
    idx = e.plan.batch_indices(e.step)
    x, y = e.plan.X[idx], e.plan.y[idx]
    with np.errstate(all="ignore"):
        outputs = layer_outputs(build_network(scenario), x, entering)
        value = get_loss(scenario.training.loss).value(y, outputs[-1], clip=scenario.training.clip)
    stages = [(f"output layers.{i}", output) for i, output in enumerate(outputs)] + [("loss", value)]
    return all(stage in trace and np.shape(trace[stage]) == np.shape(computed)
               and agree(trace[stage], computed, e.tolerance) for stage, computed in stages)


def property_of(result: ScenarioResult, label: str, reference: str, dtype: str, runs: Runs) -> Property | None:
    """The property of ``label``'s framework that accounts for its run against ``reference``'s (module
    docstring); None when none does. Traces the pair's first divergent step only when a property applies."""
    c = result.pair(label, reference, dtype)
    run, plan = result.runs.get((label, dtype)), result.plans.get(dtype)
    if (c is None or c.agree or c.faults or c.first_divergent_step is None or run is None or not run.ok
            or plan is None or not result.runs[(reference, dtype)].ok):
        return None
    step = c.first_divergent_step
    pair = Pair(result, c, runs)
    causes = [cause for cause in PROPERTIES if cause.applies(pair)]
    for cause in causes:
        if cause.reproduce is not None and (measured := reproduced(cause, result, label, reference, dtype, step,
                                                                    runs)):
            return Property(label, reference, dtype, step, cause, measured)
    causes = [cause for cause in causes if cause.check is not None]  # a step's traces: a training scenario's
    reference_run, tolerance = result.runs[(reference, dtype)], result.scenario.tolerances[dtype]
    if not causes or not result.scenario.trains or step >= min(c.steps_a, c.steps_b) or not (
            nonfinite_from(run, step, reference=reference_run, tolerance=tolerance)
            or masked_from(run, reference_run, step, tolerance)):
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
    if not (forward_agrees(evidence.traces[c.a], evidence.traces[c.b], evidence)
            or all(forward_own(evidence, side) for side in sides)):
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
    measure = cause.reproduce_rounding
    # the agreement rule against it as against the reference: with rounding's reach in that run (``R``),
    # unless the scenario sets its tolerance by hand
    rounding = None if measure is None or not tolerance.measured else (lambda n: measure(plan, n))
    apart = compare(made, result.runs[(reference, dtype)], tolerance)
    together = compare(result.runs[(label, dtype)], made, tolerance, rounding=rounding)
    if apart.agree or not together.agree:
        return None
    return (f"{label}'s run agrees at every step with {reference}'s made again with {cause.name} (NumPy, none of "
            f"{label}'s code; max |a - b| {together.max_abs:.2e}), which parts from {reference}'s own run at step "
            f"{apart.first_divergent_step}")
