"""The registry of known causes (``CAUSES``), in the order a diagnosis tries them, and ``name_cause``,
which names the first that applies and is confirmed.

A cause is confirmed either by a control run (``harness.judge.controls``: the pair re-run with one
declared setting aligned agrees; the families in ``settings`` and ``conventions``) or by an exact
measurement of what one side computed (``Finding``; the families in ``precision``, ``records``,
``updates``, ``layers`` and ``factors``). A cause is named only when confirmed. A new cause is one
entry here, beside its family's function.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from harness.judge.causes import guard_at_zero, subnormals, ties
from harness.judge.causes.conventions import convention_control, narrowed_sides, rule_control
from harness.judge.causes.evidence import Evidence, Finding
from harness.judge.causes.factors import constant_factor, gradient_scaled
from harness.judge.causes.layers import activation_applied, activation_derivative, clip_applied, kernel_layout
from harness.judge.causes.precision import computed_dtype, float32_values
from harness.judge.causes.records import accumulated_gradients, initial_parameters, record_late, wrong_batch_rows
from harness.judge.causes.settings import (
    align,
    clip_differs,
    float64_control,
    learning_rate_differs,
    with_optimizer,
    with_training,
)
from harness.judge.causes.updates import effective_learning_rate, weight_decay
from harness.judge.controls import Control, ControlRun, Pair, run_control
from harness.judge.rounding import Errors
from harness.judge.runs import Runs
from harness.run.plan import TrainingPlan
from harness.run.progress import Progress
from harness.run.trajectory import Trajectory


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
    # a property's other confirmation: the reference's run of a side's scenario made again in NumPy with
    # the property acting, for a side whose framework has it and where it acts by the pair's first
    # divergent step (None otherwise); the side must agree with it (``harness.judge.properties``)
    reproduce: Callable[[Runs, str, TrainingPlan, int], Trajectory | None] | None = None
    # rounding's reach in that run, for the agreement rule's R term against it (None: the fixed terms alone)
    reproduce_rounding: Callable[[TrainingPlan, int], Errors] | None = None
    # a real property of a framework, not a defect: a framework run that differs from the reference in
    # its convention by it alone, confirmed by its ``check``, is accounted for (``harness.judge.properties``)
    # and its pairs differ, explained, as by a convention or a dtype rule
    property: bool = False


CAUSES: tuple[Cause, ...] = (
    Cause(
        name="optimizer convention",
        explanation="the two sides update with different optimizer formulas of the same name "
                    "(e.g. Adam's epsilon added after vs before the bias correction)",
        applies=lambda p: "common" not in (p.run(p.comparison.a).convention, p.run(p.comparison.b).convention)
        and bool(p.run(p.comparison.a).convention) and bool(p.run(p.comparison.b).convention)
        and p.run(p.comparison.a).convention != p.run(p.comparison.b).convention,
        controls=convention_control,
    ),
    Cause(
        name="cross-entropy clipping",
        explanation="the two sides guard log(p) differently (Keras clips p to [1e-7, 1 - 1e-7], "
                    "torch clamps log p at -100, the labs do not guard)",
        applies=clip_differs,
        controls=lambda p: align(p, "clip", lambda s: s.training_spec.clip,
                                  lambda s, v: with_training(s, clip=v)),
    ),
    Cause(
        name="learning rate",
        explanation="the two sides train with different learning rates",
        applies=learning_rate_differs,
        controls=lambda p: align(p, "learning rate", lambda s: s.training_spec.optimizer.learning_rate,
                                  lambda s, v: with_optimizer(s, learning_rate=v)),
    ),
    # a property of the frameworks' autograd, measured without their code (guard_at_zero)
    Cause(name=guard_at_zero.NAME, explanation=guard_at_zero.EXPLANATION, applies=guard_at_zero.applies,
          check=guard_at_zero.check, property=True),
    # a property of a framework's arithmetic, measured by the reference run flushed (subnormals)
    Cause(name=subnormals.NAME, explanation=subnormals.EXPLANATION, applies=subnormals.applies,
          reproduce=subnormals.reproduce, reproduce_rounding=subnormals.rounding, property=True),
    # a property of a framework's autograd at a guard's bound, measured by the reference run with it (ties)
    Cause(name=ties.NAME, explanation=ties.EXPLANATION, applies=ties.applies, reproduce=ties.reproduce,
          property=True),
    # a framework's own dtype rule, confirmed by its control run with the rule off (after the properties, as
    # ``harness.judge.explain.account`` tries them: a run a property accounts for is not the rule's)
    Cause(name="backend dtype rule", explanation="a side's framework returns 32-bit results from some 64-bit "
                                                 "operations (its dtype rule), so part of a float64 run is computed "
                                                 "in float32", applies=lambda p: bool(narrowed_sides(p)),
          controls=rule_control),
    # measured defects (the measured families), before float32 growth: a float32 run computed in
    # float64 agrees with float64 too, and is a defect, not drift
    Cause(name="computed in another dtype", explanation="a side computed with tensors of another dtype than the run's",
          check=computed_dtype),
    Cause(name="initial parameters", explanation="a side did not start from the declared initial parameters",
          check=initial_parameters),
    Cause(name="batch contents", explanation="a side trained a step on other rows than the plan's batch",
          check=wrong_batch_rows),
    Cause(name="accumulated gradients", explanation="a side's gradients are not reset between steps",
          check=accumulated_gradients),
    Cause(name="record one step late", explanation="a side writes its parameters to the record before its update",
          check=record_late),
    Cause(name="effective learning rate", explanation="a side updates with another learning rate than the "
                                                      "declared one (measured as update / gradient)",
          check=effective_learning_rate),
    Cause(name="weight decay", explanation="a side's update has an extra term proportional to the weights",
          check=weight_decay),
    Cause(name="activation applied", explanation="a side's layer applies another activation than the declared one",
          check=activation_applied),
    Cause(name="kernel layout", explanation="a side's layer reads its kernel in another layout than it holds",
          check=kernel_layout),
    Cause(name="activation derivative", explanation="a side's backpropagation takes an activation's derivative "
                                                    "at the wrong point or in a wrong form",
          check=activation_derivative),
    Cause(name="cross-entropy guard applied", explanation="a side's loss guards log(p) otherwise than declared",
          check=clip_applied),
    Cause(name="computed in float32", explanation="a side computed part of a float64 step in single precision",
          check=float32_values),
    Cause(name="rate applied to the gradient", explanation="a side scales its gradient by the learning rate (or "
                                                           "momentum) before the step",
          check=gradient_scaled),
    Cause(name="constant factor", explanation="one side's values are a constant multiple of the other's",
          check=constant_factor),
    Cause(
        name="float32 rounding growth",
        explanation="single-precision rounding (eps 1.2e-7) in different operation orders, grown "
                    "over the steps; the same computations in float64 agree",
        applies=lambda p: p.comparison.dtype == "float32",
        controls=float64_control,
    ),
)


PROPERTIES: tuple[Cause, ...] = tuple(cause for cause in CAUSES if cause.property)


def name_cause(pair: Pair, *, evidence: Evidence | None = None, causes: tuple[Cause, ...] = CAUSES,
               progress: Progress | None = None) -> tuple[Cause | None, ControlRun | Finding | None, list[ControlRun]]:
    """The first applicable cause confirmed by its check (on ``evidence``) or by an agreeing control
    run, with every control run tried."""
    c, tried = pair.comparison, list[ControlRun]()
    for cause in causes:
        if not cause.applies(pair):
            continue
        if cause.reproduce is not None:  # measured once for the pair's sides (``harness.judge.properties``)
            acting = next((p for side in (c.a, c.b) if (p := pair.result.properties.get((side, c.dtype))) is not None
                           and p.cause is cause), None)
            if acting is not None:
                return cause, Finding(cause.name, acting.label, acting.measured), tried
        if cause.check is not None:
            with np.errstate(all="ignore"):  # a measurement of diverged runs meets inf and nan: results, not errors
                found = None if evidence is None else cause.check(evidence)
            if found is not None:
                return cause, found, tried
        for control in cause.controls(pair):
            outcome = run_control(pair.result, control, frameworks=(c.a, c.b), runs=pair.runs, progress=progress)
            tried.append(outcome)
            if outcome.agrees:
                return cause, outcome, tried
            # inconclusive, or still disagrees (e.g. an adapter that cannot take the other side's
            # setting): try the cause's next control; when none agrees the cause is not named
    return None, None, tried
