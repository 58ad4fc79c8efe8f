"""A scenario's result: its plans and runs, the pairs compared, the lab values checked, and what
passes or fails it (``agree``, ``ok``, ``state``, ``faults``), with the lookups every later floor
makes on it (the reference run a label is checked against, a pair in either order).

The pipeline (``harness.pipeline``) fills it in: the runs, then the judge's comparisons and
explanations; the render and answers floors read it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.judge.compare import DISAGREE, Comparison, worst_state
from harness.judge.lab_values import LabCheck
from harness.judge.rounding import Errors
from harness.judge.textbook import RuleCheck
from harness.run.labels import REFERENCE, framework_of, reference_in
from harness.run.plan import TrainingPlan
from harness.run.trajectory import Trajectory
from harness.spec.conventions import COMMON
from harness.spec.scenario import Scenario

if TYPE_CHECKING:  # properties.py reads results: only its type here
    from harness.judge.properties import Property


@dataclass
class ScenarioResult:
    scenario: Scenario
    frameworks: tuple[str, ...]  # implementation labels, in run order
    dtypes: tuple[str, ...]
    plans: dict[str, TrainingPlan] = field(default_factory=dict)
    runs: dict[tuple[str, str], Trajectory] = field(default_factory=dict)  # (label, dtype) -> run
    comparisons: list[Comparison] = field(default_factory=list)
    lab_checks: list[LabCheck] = field(default_factory=list)  # the reference against the lab
    sides: dict[str, Scenario] = field(default_factory=dict)  # label -> the variant it ran instead
    # (label, dtype) -> how a control run accounts for a run that differs from the reference: the
    # framework's narrowing rule and the operations it narrowed (``harness.judge.explain.account``)
    rules: dict[tuple[str, str], str] = field(default_factory=dict)
    # (label, dtype) -> the real property of its framework that accounts for a run that differs from the
    # reference, measured (``harness.judge.properties``; ``harness.judge.explain.account``)
    properties: dict[tuple[str, str], Property] = field(default_factory=dict)
    # (label, dtype) -> accuracy per split of the run's final parameters (classifiers only)
    accuracy: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    # the plans' breaks of the scenario's declaration (``harness.judge.plan_checks``): a fault of the
    # harness every implementation shares, which no pair can show
    plan_faults: list[str] = field(default_factory=list)
    # (reference label, dtype) -> the reference run in an optimizer convention against that
    # convention's update rule, computed independently (``harness.judge.textbook``; ``harness.judge.explain``)
    rule_checks: dict[tuple[str, str], RuleCheck] = field(default_factory=dict)
    # the measured rounding error of each computation that a pair the agreement rule's fixed terms
    # reject needed (``harness.judge.compare_runs.rounding_of``; ``harness.judge.rounding``), by
    # (scenario name, training, dtype, jittered runs)
    rounding: dict[tuple[str, str, str, int], Errors] = field(default_factory=dict)

    def scenario_for(self, framework: str) -> Scenario:
        """The scenario one implementation ran: its side variant, else the scenario itself."""
        return self.sides.get(framework, self.scenario)

    @property
    def agree(self) -> bool:
        """Every compared pair agrees (or differs only by an explained optimizer convention) and
        no run crashed (skipped frameworks do not count) and the shared plan is what the scenario
        declares (``plan_faults``)."""
        crashed = any(r.status == "crashed" for r in self.runs.values())
        return not crashed and not self.plan_faults and all(c.ok for c in self.comparisons)

    @property
    def lab_ok(self) -> bool:
        return all(c.ok for c in self.lab_checks)

    @property
    def dtype_faults(self) -> list[str]:
        """Runs whose own tensors had another dtype than the run's (``Trajectory.computed_dtypes``):
        a float32 run computed in float64 may agree with float32 runs within their tolerance, and
        is still not a float32 run. A run whose framework's narrowing rule its control run confirms
        (``rules``) is that framework's behaviour, reported as explained, not a fault."""
        return [fault for label, dtype in self.runs if (fault := self.dtype_fault(label, dtype))]

    def dtype_fault(self, label: str, dtype: str) -> str:
        """What the run of ``label`` in ``dtype`` computed in another dtype ("" when nothing, or when
        its framework's narrowing rule is confirmed by its control run, ``rules``)."""
        if (label, dtype) in self.rules:  # a framework's own rule, confirmed by its control run
            return ""
        wrong = self.wrong_dtypes(label, dtype)
        return f"{label} ({dtype}) computed its " + ", ".join(f"{kind} in {dt}" for kind, dt in wrong.items()) \
            if wrong else ""

    def wrong_dtypes(self, label: str, dtype: str) -> dict[str, str]:
        """What the run of ``label`` in ``dtype`` computed in another dtype (kind -> that dtype), whatever
        explains it: {} when nothing (or no such run)."""
        run = self.runs.get((label, dtype))
        return {} if run is None else {kind: dt for kind, dt in run.computed_dtypes.items() if dt != dtype}

    @property
    def ok(self) -> bool:
        """What a CI script can trust: every pair agrees or differs, explained; no run crashed or
        computed in another dtype than its own; the reference reproduces the lab's printed values."""
        return self.agree and self.lab_ok and not self.dtype_faults

    @property
    def faults(self) -> list[str]:
        """What fails the result beyond its pairs' states, each in words: a break of the shared plan
        (``plan_faults``), a run that computed in another dtype than its own (``dtype_faults``), a
        printed lab value the reference misses."""
        missed = [c.label for c in self.lab_checks if not c.ok]
        lab = [f"the reference misses the lab's printed {'; '.join(missed)}"] if missed else []
        return self.plan_faults + self.dtype_faults + lab

    @property
    def state(self) -> str:
        """The worst state of the compared pairs (``harness.judge.compare.STATES``; ``agree`` when
        nothing was compared), and ``disagree`` when something else fails the result (``faults``):
        a failing result never says ``agree``."""
        return worst_state([c.state for c in self.comparisons] + ([DISAGREE] if self.faults else []))

    def comparison(self, a: str, b: str, dtype: str) -> Comparison | None:
        for c in self.comparisons:
            if (c.a, c.b, c.dtype) == (a, b, dtype):
                return c
        return None

    def pair(self, a: str, b: str, dtype: str) -> Comparison | None:
        """The comparison of ``a`` and ``b`` in ``dtype``, in either order."""
        return self.comparison(a, b, dtype) or self.comparison(b, a, dtype)


def in_convention(result: ScenarioResult, convention: str, dtype: str) -> list[str]:
    """The frameworks (not the reference) whose run in ``dtype`` computed ``convention``."""
    return [label for label in result.frameworks if framework_of(label) != REFERENCE
            and (run := result.runs.get((label, dtype))) is not None and run.ok and run.convention == convention]


def bridge_of(result: ScenarioResult, label: str, dtype: str) -> str | None:
    """The reference run ``label``'s run is checked against: the reference in its convention (None
    when the reference did not run)."""
    run = result.runs.get((label, dtype))
    convention = None if run is None or run.convention in ("", COMMON) else run.convention
    return reference_label(result, convention)


def reference_label(result: ScenarioResult, convention: str | None) -> str | None:
    """The reference run's label, in ``convention`` when the reference ran in several."""
    labels = [label for label in result.frameworks if framework_of(label) == REFERENCE]
    if convention is not None and reference_in(convention) in labels:
        return reference_in(convention)
    return labels[0] if labels else None


def names(labels: list[str] | tuple[str, ...]) -> str:
    """Labels as text: ``a``, ``a and b``, ``a, b and c``."""
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"
