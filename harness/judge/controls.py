"""Control runs: the disagreeing pair (``Pair``) re-run with one declared setting aligned
(``Control``), and whether the re-run agrees within the tolerance without drifting (``ControlRun``),
its further pairs and its reference runs' update-rule checks included.

The runs are made by the ``Runs`` the pair carries (``harness.judge.runs``); a side that already ran
exactly the scenario a control asks for is reused, not run again.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from harness.errors import BadInput
from harness.judge.compare import Comparison, compare
from harness.judge.localisation import DRIFT_FRACTION
from harness.judge.result import ScenarioResult, names
from harness.judge.runs import Runs
from harness.judge.textbook import RuleCheck, check_rule
from harness.run.labels import framework_of
from harness.run.plan import TrainingPlan, make_plan, side_plan
from harness.run.progress import Progress
from harness.run.trajectory import Trajectory
from harness.spec.scenario import Scenario


@dataclass(frozen=True)
class Pair:
    """The disagreeing pair under diagnosis."""

    result: ScenarioResult
    comparison: Comparison
    runs: Runs  # what makes its control runs and answers for its implementations

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
    drift_ok: bool = False  # confirms on agreement alone (the bridge: the pipeline's criterion)
    # reference runs (label, scenario) that must follow their convention's update rule, computed
    # independently (``harness.judge.textbook``; the run's own check, ``rule_checks``, when it ran)
    rules: tuple[tuple[str, Scenario], ...] = ()


@dataclass
class ControlRun:
    control: Control
    comparison: Comparison | None
    fraction: float = 0.0  # the largest fraction of its tolerance the control pair uses
    message: str = ""  # why the control could not decide (a run crashed or was skipped)
    also: list["ControlRun"] = field(default_factory=list)  # the control's further pairs
    checks: list[RuleCheck] = field(default_factory=list)  # its reference runs against their update rules
    applicable: bool = True  # False: a side cannot run the control (a convention it cannot compute)
    # a bridge made of the result's own runs whose one difference is a side's framework property,
    # measured by the pipeline (``ScenarioResult.properties``): it agrees before the property's step
    accounted: str = ""

    @property
    def agrees(self) -> bool:
        """The control confirms its cause: it agrees at every step and does not drift either
        (nor does any of its further pairs)."""
        return (self.comparison is not None and (self.comparison.agree or bool(self.accounted))
                and (self.fraction < DRIFT_FRACTION or self.control.drift_ok) and all(r.agrees for r in self.also)
                and all(check.ok for check in self.checks))

    @property
    def summary(self) -> str:
        """What confirmed the cause, in a few words (a ``Finding`` has the same): the control's pair,
        and the reference runs checked against their conventions' update rules, if any."""
        checked = [x.label for x in self.checks]
        return self.control.description + (f"; {names(checked)} against {'its' if len(checked) == 1 else 'their'} "
                                           "convention's update rule, computed independently" if checked else "")

    def describe(self) -> str:
        if self.comparison is None:
            state = "inconclusive" if self.applicable else "not applicable"
            text = f"{self.control.description}: {state} ({self.message})"
        else:
            c = self.comparison
            if self.accounted:
                verdict = f"agree before step {c.first_divergent_step}, then differ only by {self.accounted}"
            elif not c.agree:
                verdict = f"still disagree from step {c.first_divergent_step}"
            else:
                verdict = ("agree" if self.fraction < DRIFT_FRACTION
                           else "agree (drifting, diagnosed on its own)" if self.control.drift_ok
                           else "agree but still drift")
            text = (f"{self.control.description}: {verdict} (max |a - b| {c.max_abs:.2e}, at worst "
                    f"{self.fraction:.2g} x the tolerance rtol {c.rtol:g}, atol {c.atol:g})")
        return "; and ".join([text] + [r.describe() for r in self.also] + [x.describe() for x in self.checks])


def run_side(result: ScenarioResult, label: str, scenario: Scenario, dtype: str, plan: TrainingPlan, *,
             runs: Runs, progress: Progress | None) -> Trajectory:
    """The run of ``label`` on ``scenario`` (the result's own run when it ran exactly this), made by ``runs``."""
    existing = result.runs.get((label, dtype))
    if existing is not None and scenario is result.scenario_for(label):
        return existing  # this side already ran exactly this
    start = time.perf_counter()
    run = runs.run(framework_of(label), side_plan(plan, scenario))
    run.framework = label
    if progress is not None:
        progress(f"{result.scenario.name} x {label} ({dtype}): control run {run.status}, "
                 f"{run.steps} steps, {time.perf_counter() - start:.1f} s")
    return run


def run_control(result: ScenarioResult, control: Control, *, frameworks: tuple[str, str], runs: Runs,
                progress: Progress | None = None) -> ControlRun:
    """The control's pair run (by ``runs``) and compared, with its further pairs and rule checks."""
    frameworks = control.frameworks or frameworks
    also = [run_control(result, other, frameworks=frameworks, runs=runs, progress=progress) for other in control.also]
    for label, scenario in zip(frameworks, (control.scenario_a, control.scenario_b)):
        try:  # a convention this side's optimizer classes cannot compute: the control does not apply
            runs.check_runnable(scenario, frameworks=(framework_of(label),), dtypes=(control.dtype,))
        except BadInput as exc:  # e.g. "... can express (torch.optim.Adam computes the 'torch' convention)"
            why = exc.expected.split(" (", 1)[-1].rstrip(")")
            return ControlRun(control, None, message=f"{why}, not {exc.received!r}", also=also, applicable=False)
    plan = result.plans.get(control.dtype) or make_plan(result.scenario, control.dtype)
    made = [run_side(result, fw, s, control.dtype, plan, runs=runs, progress=progress)
            for fw, s in zip(frameworks, (control.scenario_a, control.scenario_b))]
    failed = [r for r in made if not r.ok]
    if failed:
        return ControlRun(control, None, message="; ".join(f"{r.framework} {r.status}: {r.message}" for r in failed),
                          also=also)
    comparison = compare(made[0], made[1], result.scenario.tolerances[control.dtype])
    checks = [_rule_check(result, label, scenario, control.dtype, plan, runs=runs, progress=progress)
              for label, scenario in control.rules]
    accounted = [found.describe() for label, run in zip(frameworks, made)
                 if not comparison.agree and (found := result.properties.get((label, control.dtype))) is not None
                 and run is result.runs.get((label, control.dtype)) and found.reference in frameworks
                 and found.step == comparison.first_divergent_step]
    return ControlRun(control, comparison, 0.0 if comparison.closest is None else comparison.closest[2], also=also,
                      checks=checks, accounted=accounted[0] if accounted else "")


def _rule_check(result: ScenarioResult, label: str, scenario: Scenario, dtype: str, plan: TrainingPlan, *,
                runs: Runs, progress: Progress | None) -> RuleCheck:
    """The reference run ``label`` (of ``scenario``) against its convention's update rule: the
    pipeline's check when that run was made, else the run made (``run_side``) and checked here."""
    if (label, dtype) in result.rule_checks and scenario is result.scenario_for(label):
        return result.rule_checks[(label, dtype)]
    return check_rule(label, run_side(result, label, scenario, dtype, plan, runs=runs, progress=progress), scenario,
                      result.scenario.tolerances[dtype])
