"""Run a scenario in every requested implementation and dtype, then compare the pairs.

Implementations are labelled by framework (``numpy``, ``keras``, ``torch``). When the
scenario's optimizer computes different arithmetic in Keras and torch (``harness.spec.conventions``)
and the scenario pins no convention, each framework runs its own convention and the
reference runs once per convention, labelled ``numpy[keras]`` and ``numpy[torch]``.
The pairs compared are then the reference against the framework of the same
convention, the two reference runs (what the convention alone changes), and the
frameworks against each other. A pair of different conventions is *explained* when each
side agrees with the reference run in its own convention: its difference is the
convention's, and its verdict says so instead of "disagree".
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import numpy as np

from harness.judge.compare import Comparison, compare, worst_state
from harness.judge.lab_values import LabCheck, check_lab_value
from harness.judge.metrics import ACCURACY_LOSSES, evaluate
from harness.run.adapters import FRAMEWORKS, REFERENCE, adapter, check_expressible, run_all
from harness.run.budget import check_budget
from harness.run.plan import TrainingPlan, make_plan
from harness.run.trajectory import Trajectory
from harness.spec.conventions import COMMON, difference, pinned
from harness.spec.scenario import DTYPES, Scenario

Progress = Callable[[str], None]


def framework_of(label: str) -> str:
    """``numpy[keras]`` -> ``numpy``."""
    return label.split("[", 1)[0]


def reference_in(convention: str) -> str:
    """The label of the reference run in ``convention``: ``numpy[keras]``."""
    return f"{REFERENCE}[{convention}]"


def convention_of(label: str) -> str | None:
    """``numpy[keras]`` -> ``keras``; None for a label without a pinned convention."""
    return label[len(REFERENCE) + 1:-1] if label.startswith(f"{REFERENCE}[") else None


def with_convention(scenario: Scenario, convention: str) -> Scenario:
    """The scenario with its optimizer pinned to ``convention`` (the ``convention`` option)."""
    training = scenario.training_spec
    pinned_optimizer = replace(training.optimizer, options={**training.optimizer.options, "convention": convention})
    return replace(scenario, training=replace(training, optimizer=pinned_optimizer))


def implementations(scenario: Scenario, frameworks: tuple[str, ...]) -> dict[str, Scenario]:
    """label -> the scenario that implementation runs (see the module docstring)."""
    labels = {fw: scenario for fw in frameworks}
    if REFERENCE not in frameworks or scenario.training is None:
        return labels
    spec = scenario.training.optimizer
    if pinned(spec) is not None or difference(spec) is None:
        return labels
    others = [adapter(fw).native_convention(spec) for fw in frameworks if fw != REFERENCE]
    conventions = list(dict.fromkeys(others)) or list(adapter(REFERENCE).conventions)
    out = {}
    for fw in frameworks:
        if fw == REFERENCE:
            out.update({reference_in(c): with_convention(scenario, c) for c in conventions})
        else:
            out[fw] = scenario
    return out


def planned_convention(label: str, scenario: Scenario) -> str:
    """The optimizer convention the implementation ``label`` computes when it runs ``scenario``."""
    if scenario.training is None:
        return COMMON
    return adapter(framework_of(label)).native_convention(scenario.training.optimizer)


def pairs_of(labels: list[str], conventions: Mapping[str, str]) -> list[tuple[str, str]]:
    """Every pair, except a reference run in one convention against a framework of another
    (that difference is the two reference runs' plus the framework's own)."""
    out = []
    for a, b in itertools.combinations(labels, 2):
        ref = a if convention_of(a) else b if convention_of(b) else None
        other = b if ref == a else a
        if ref is not None and not convention_of(other) and conventions.get(other) not in (
                None, "", COMMON, convention_of(ref)):
            continue
        out.append((a, b))
    return out


def planned_pairs(scenario: Scenario, frameworks: tuple[str, ...] = FRAMEWORKS) -> list[tuple[str, str]]:
    """The pairs ``run_scenario`` compares (per dtype), known before anything runs."""
    labels = implementations(scenario, frameworks)
    return pairs_of(list(labels), {label: planned_convention(label, s) for label, s in labels.items()})


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
    # (label, dtype) -> accuracy per split of the run's final parameters (classifiers only)
    accuracy: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)

    def scenario_for(self, framework: str) -> Scenario:
        """The scenario one implementation ran: its side variant, else the scenario itself."""
        return self.sides.get(framework, self.scenario)

    @property
    def agree(self) -> bool:
        """Every compared pair agrees (or differs only by an explained optimizer convention) and
        no run crashed (skipped frameworks do not count)."""
        crashed = any(r.status == "crashed" for r in self.runs.values())
        return not crashed and all(c.ok for c in self.comparisons)

    @property
    def lab_ok(self) -> bool:
        return all(c.ok for c in self.lab_checks)

    @property
    def dtype_faults(self) -> list[str]:
        """Runs whose own tensors had another dtype than the run's (``Trajectory.computed_dtypes``):
        a float32 run computed in float64 may agree with float32 runs within their tolerance, and
        is still not a float32 run."""
        return [f"{label} ({dtype}) computed its " + ", ".join(f"{kind} in {dt}" for kind, dt in wrong.items())
                for (label, dtype), run in self.runs.items()
                if (wrong := {kind: dt for kind, dt in run.computed_dtypes.items() if dt != dtype})]

    @property
    def ok(self) -> bool:
        """What a CI script can trust: every pair agrees or differs, explained; no run crashed or
        computed in another dtype than its own; the reference reproduces the lab's printed values."""
        return self.agree and self.lab_ok and not self.dtype_faults

    @property
    def state(self) -> str:
        """The worst state of the compared pairs (``harness.judge.compare.STATES``; ``agree`` when
        nothing was compared)."""
        return worst_state(c.state for c in self.comparisons)

    def comparison(self, a: str, b: str, dtype: str) -> Comparison | None:
        for c in self.comparisons:
            if (c.a, c.b, c.dtype) == (a, b, dtype):
                return c
        return None


def run_scenario(
    scenario: Scenario,
    *,
    frameworks: tuple[str, ...] = FRAMEWORKS,
    dtypes: tuple[str, ...] = DTYPES,
    progress: Progress | None = None,
    sides: Mapping[str, Scenario] | None = None,
    max_bytes: int | None = None,
) -> ScenarioResult:
    """``sides`` runs one implementation on a variant of the scenario (e.g. made with
    ``dataclasses.replace``) with the same data, initial weights and batch order. A scenario
    whose runs would need more than ``max_bytes`` (default: the machine's memory) is refused
    before anything is allocated (``harness.run.budget``)."""
    [result] = run_scenarios([prepare(scenario, frameworks=frameworks, dtypes=dtypes, sides=sides,
                                      max_bytes=max_bytes)], progress=progress)
    return result


@dataclass
class Prepared:
    """A scenario checked and planned, its runs not made yet (``prepare``)."""

    result: ScenarioResult
    native: set[str]  # the implementations in their native convention (not a caller's variant)

    @property
    def cells(self) -> list[tuple[str, str]]:
        return [(label, dtype) for dtype in self.result.dtypes for label in self.result.frameworks]


def prepare(scenario: Scenario, *, frameworks: tuple[str, ...] = FRAMEWORKS, dtypes: tuple[str, ...] = DTYPES,
            sides: Mapping[str, Scenario] | None = None, max_bytes: int | None = None) -> Prepared:
    """Check that the scenario can run (``check_runnable``: ``BadInput`` otherwise) and make its plans."""
    planned = implementations(scenario, frameworks)
    result = ScenarioResult(scenario=scenario, frameworks=tuple(planned), dtypes=dtypes,
                            sides={**{k: v for k, v in planned.items() if v is not scenario}, **dict(sides or {})})
    check_runnable(scenario, frameworks=frameworks, dtypes=dtypes, max_bytes=max_bytes, sides=result.sides)
    for dtype in dtypes:
        result.plans[dtype] = make_plan(scenario, dtype)
    return Prepared(result, native=set(planned) - set(sides or {}))


def run_scenarios(prepared: list[Prepared], *, progress: Progress | None = None) -> list[ScenarioResult]:
    """Every run of every prepared scenario in one ``run_all``: the frameworks' workers go on to
    the next scenario's runs while the reference computes (no wait between scenarios); then each
    scenario's pairs are compared. The results are the same as one scenario at a time."""
    owners = [(p, cell) for p in prepared for cell in p.cells]

    def done(i: int, run: Trajectory) -> None:
        p, (label, dtype) = owners[i]
        run.framework = label
        if progress is not None:
            extra = f" ({run.message})" if run.message else ""
            progress(f"{p.result.scenario.name} x {label} ({dtype}): {run.status}, {run.steps} steps, "
                     f"{run.seconds:.1f} s{extra}")

    runs = run_all([(framework_of(label), side_plan(p.result.plans[dtype], p.result.scenario_for(label)))
                    for p, (label, dtype) in owners], done=done)
    for (p, cell), run in zip(owners, runs):
        p.result.runs[cell] = run
    return [_judge(p) for p in prepared]


def _judge(p: Prepared) -> ScenarioResult:
    """Accuracy, the pairs compared, conventions explained and the lab's printed values checked."""
    result, scenario = p.result, p.result.scenario
    for dtype in result.dtypes:
        plan = result.plans[dtype]
        for label in result.frameworks:
            run = result.runs[(label, dtype)]
            if run.ok:
                result.accuracy[(label, dtype)] = _accuracy(scenario, run, plan)
        tol = scenario.tolerances[dtype]
        conventions = {label: result.runs[(label, dtype)].convention for label in result.frameworks}
        for a, b in pairs_of(list(result.frameworks), conventions):
            ra, rb = result.runs[(a, dtype)], result.runs[(b, dtype)]
            if ra.ok and rb.ok:
                result.comparisons.append(compare(ra, rb, tol))
        _explain_conventions(result, dtype, native=p.native)
    result.lab_checks = _lab_checks(result)
    return result


def check_runnable(scenario: Scenario, *, frameworks: tuple[str, ...] = FRAMEWORKS, dtypes: tuple[str, ...] = DTYPES,
                   max_bytes: int | None = None, sides: Mapping[str, Scenario] | None = None) -> None:
    """``BadInput`` before anything runs: a convention a framework's optimizer cannot compute, or
    runs that would not fit in memory (``harness.run.budget``)."""
    planned = implementations(scenario, frameworks)
    for label, ran in {**planned, **dict(sides or {})}.items():
        if ran.training is not None:
            check_expressible(adapter(framework_of(label)), ran.training.optimizer, file=ran.path)
    check_budget(scenario, runs_per_dtype=len(planned), dtypes=dtypes, max_bytes=max_bytes)


def _accuracy(scenario: Scenario, run: Trajectory, plan: TrainingPlan) -> dict[str, float]:
    """Classification accuracy of a run's final parameters on the training data and every
    held-out split (empty unless the scenario trains on a cross-entropy; binary: one output column,
    a multi-label output has no single class to score)."""
    if scenario.training is None or scenario.training.loss not in ACCURACY_LOSSES:
        return {}
    if scenario.training.loss == "binary_crossentropy" and scenario.layers[-1].units != 1:
        return {}
    with np.errstate(all="ignore"):
        return evaluate(scenario, run.final_params, {"train": (plan.X, plan.y), **plan.splits})


def _explain_conventions(result: ScenarioResult, dtype: str, *, native: set[str]) -> None:
    """Mark the pairs of different conventions that the harness itself chose (each side in its
    native convention) with the convention difference, and whether the reference explains it."""
    spec = None if result.scenario.training is None else result.scenario.training.optimizer
    for c in result.comparisons:
        if c.dtype != dtype or spec is None or c.a not in native or c.b not in native:
            continue
        ca, cb = result.runs[(c.a, dtype)].convention, result.runs[(c.b, dtype)].convention
        if COMMON in (ca, cb) or not ca or not cb or ca == cb:
            continue
        c.expected_difference = difference(spec) or ""
        c.explained = all(_agrees_with_reference(result, side, conv, dtype) for side, conv in ((c.a, ca), (c.b, cb)))


def _agrees_with_reference(result: ScenarioResult, label: str, convention: str, dtype: str) -> bool:
    reference = reference_in(convention)
    if label == reference:
        return True
    bridge = result.comparison(reference, label, dtype) or result.comparison(label, reference, dtype)
    return bridge is not None and bridge.agree


def reference_label(result: ScenarioResult, convention: str | None) -> str | None:
    """The reference run's label, in ``convention`` when the reference ran in several."""
    labels = [label for label in result.frameworks if framework_of(label) == REFERENCE]
    if convention is not None and reference_in(convention) in labels:
        return reference_in(convention)
    return labels[0] if labels else None


def _lab_checks(result: ScenarioResult) -> list[LabCheck]:
    """Each printed lab value against the reference run of its dtype and convention."""
    checks = []
    for lab in result.scenario.lab_values:
        label = reference_label(result, lab.convention)
        run = None if label is None else result.runs.get((label, lab.dtype))
        if label is None or run is None or not run.ok:
            continue
        checks.append(check_lab_value(lab, run, side_plan(result.plans[lab.dtype], result.scenario_for(label))))
    return checks


def side_plan(plan: TrainingPlan, scenario: Scenario) -> TrainingPlan:
    """The same data, initial weights and batch order, trained as ``scenario`` says."""
    return plan if scenario is plan.scenario else replace(plan, scenario=scenario)
