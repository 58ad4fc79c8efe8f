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

Some frameworks also have a dtype rule of their own (``Adapter.narrowing_rule``: Keras on JAX and
torch return 32-bit results from some 64-bit operations). When a run of one narrowed operations
(``Trajectory.narrowed_ops``) and disagrees with the reference, the runner makes a *control run*,
labelled ``<label>[64-bit]`` (``control_label``): the same implementation with that one rule turned
off (``Scenario.keep_64_bit``), compared with the reference in its convention. When the control
agrees, the rule is the whole of the run's difference: the run is accounted for, and its pairs
differ, explained, naming the rule and the operations it narrowed. Control runs are kept in
``runs``/``sides``, not in ``frameworks``; only their pair with the reference is compared.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import numpy as np

from harness.judge.compare import DISAGREE, Comparison, compare, worst_state
from harness.judge.lab_values import LabCheck, check_lab_value
from harness.judge.metrics import ACCURACY_LOSSES, evaluate
from harness.judge.plan_checks import plan_faults
from harness.judge.rounding import Errors, rounding_error
from harness.judge.textbook import RuleCheck, check_run
from harness.run.adapters import FRAMEWORKS, REFERENCE, adapter, check_expressible, run_all
from harness.run.budget import check_budget
from harness.run.plan import TrainingPlan, make_plan
from harness.run.trajectory import Trajectory
from harness.spec.conventions import COMMON, difference, pinned
from harness.spec.scenario import DTYPES, Scenario
from harness.spec.tolerance import Tolerance
from reference.optimizers import CONVENTIONS

Progress = Callable[[str], None]


CONTROL = "64-bit"  # the control run's tag: the implementation with its narrowing rule turned off


def control_label(label: str) -> str:
    """``keras@jax`` -> ``keras@jax[64-bit]``: its control run with its narrowing rule off."""
    return f"{label}[{CONTROL}]"


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
    # the reference alone: the conventions of the default frameworks (Keras on TensorFlow and torch)
    conventions = list(dict.fromkeys(others or (adapter(fw).native_convention(spec) for fw in FRAMEWORKS
                                                if fw != REFERENCE)))
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
    # (label, dtype) -> how a control run accounts for a run that differs from the reference: the
    # framework's narrowing rule and the operations it narrowed (``_account``)
    rules: dict[tuple[str, str], str] = field(default_factory=dict)
    # (label, dtype) -> accuracy per split of the run's final parameters (classifiers only)
    accuracy: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    # the plans' breaks of the scenario's declaration (``harness.judge.plan_checks``): a fault of the
    # harness every implementation shares, which no pair can show
    plan_faults: list[str] = field(default_factory=list)
    # (reference label, dtype) -> the reference run in an optimizer convention against that
    # convention's update rule, computed independently (``harness.judge.textbook``; ``_explain``)
    rule_checks: dict[tuple[str, str], RuleCheck] = field(default_factory=dict)
    # the measured rounding error of each computation that a pair the agreement rule's fixed terms
    # reject needed (``rounding_of``; ``harness.judge.rounding``), by (scenario name, training, dtype)
    rounding: dict[tuple[str, str, str], Errors] = field(default_factory=dict)

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
        run = self.runs.get((label, dtype))
        if run is None or (label, dtype) in self.rules:  # a framework's own rule, confirmed by its control run
            return ""
        wrong = {kind: dt for kind, dt in run.computed_dtypes.items() if dt != dtype}
        return f"{label} ({dtype}) computed its " + ", ".join(f"{kind} in {dt}" for kind, dt in wrong.items()) \
            if wrong else ""

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
        result.plan_faults += plan_faults(result.plans[dtype])
    return Prepared(result, native=set(planned) - set(sides or {}))


def run_scenarios(prepared: list[Prepared], *, progress: Progress | None = None) -> list[ScenarioResult]:
    """Every run of every prepared scenario in one ``run_all``: the frameworks' workers go on to
    the next scenario's runs while the reference computes (no wait between scenarios); then each
    scenario's pairs are compared; then the control runs those runs call for (``_controls_needed``)
    are made, again all in one ``run_all``, and compared with the reference; then the pairs are
    explained (``_explain``). The results are the same as one scenario at a time."""
    cells = [(p, label, dtype, p.result.scenario_for(label)) for p in prepared for label, dtype in p.cells]
    for (p, label, dtype, _), run in zip(cells, _make(cells, progress)):
        p.result.runs[(label, dtype)] = run
    for p in prepared:
        _judge(p)
    needed = [(p, label, dtype, reference) for p in prepared for label, dtype, reference in _controls_needed(p.result)]
    controls = []
    for p, label, dtype, _ in needed:
        p.result.sides[control_label(label)] = replace(p.result.scenario_for(label), keep_64_bit=True)
        controls.append((p, control_label(label), dtype, p.result.sides[control_label(label)]))
    for (p, control, dtype, _), (_, _, _, reference), run in zip(controls, needed, _make(controls, progress)):
        p.result.runs[(control, dtype)] = run
        if run.ok and p.result.runs[(reference, dtype)].ok:
            p.result.comparisons.append(_compare(p.result, reference, control, dtype))
    for p in prepared:
        for dtype in p.result.dtypes:
            _explain(p.result, dtype, native=p.native)
    return [p.result for p in prepared]


def _make(cells: list[tuple[Prepared, str, str, Scenario]], progress: Progress | None) -> list[Trajectory]:
    """Each cell's run (``label`` running ``scenario`` on its scenario's plan for ``dtype``), all
    in one ``run_all``, each reported to ``progress`` as it finishes."""
    def done(i: int, run: Trajectory) -> None:
        p, label, dtype, _ = cells[i]
        run.framework = label
        if progress is not None:
            extra = f" ({run.message})" if run.message else ""
            progress(f"{p.result.scenario.name} x {label} ({dtype}): {run.status}, {run.steps} steps, "
                     f"{run.seconds:.1f} s{extra}")

    return run_all([(framework_of(label), side_plan(p.result.plans[dtype], scenario))
                    for p, label, dtype, scenario in cells], done=done)


def bridge_of(result: ScenarioResult, label: str, dtype: str) -> str | None:
    """The reference run ``label``'s run is checked against: the reference in its convention (None
    when the reference did not run)."""
    run = result.runs.get((label, dtype))
    convention = None if run is None or run.convention in ("", COMMON) else run.convention
    return reference_label(result, convention)


def narrowed(label: str, run: Trajectory) -> bool:
    """A run whose framework has a narrowing rule (``Adapter.narrowing_rule``) and that narrowed
    operations (``Trajectory.narrowed_ops``): a control run with the rule off can tell its share."""
    return run.ok and bool(run.narrowed_ops) and adapter(framework_of(label)).narrowing_rule is not None


def _controls_needed(result: ScenarioResult) -> list[tuple[str, str, str]]:
    """(label, dtype, reference) of every run whose framework has a narrowing rule, that narrowed
    operations and disagrees with ``reference``, the reference in its convention: each gets a control
    run with the rule off."""
    out = []
    for dtype in result.dtypes:
        for label in result.frameworks:
            reference = bridge_of(result, label, dtype)
            if not narrowed(label, result.runs[(label, dtype)]) or reference is None:
                continue
            bridge = _pair(result, label, reference, dtype)
            if bridge is not None and not bridge.agree:
                out.append((label, dtype, reference))
    return out


def _pair(result: ScenarioResult, a: str, b: str, dtype: str) -> Comparison | None:
    return result.comparison(a, b, dtype) or result.comparison(b, a, dtype)


def _judge(p: Prepared) -> ScenarioResult:
    """Accuracy, the pairs compared and the lab's printed values checked (explained in ``_explain``,
    once the control runs are made)."""
    result, scenario = p.result, p.result.scenario
    for dtype in result.dtypes:
        plan = result.plans[dtype]
        for label in result.frameworks:
            run = result.runs[(label, dtype)]
            if run.ok:
                result.accuracy[(label, dtype)] = _accuracy(scenario, run, plan)
        conventions = {label: result.runs[(label, dtype)].convention for label in result.frameworks}
        for a, b in pairs_of(list(result.frameworks), conventions):
            if result.runs[(a, dtype)].ok and result.runs[(b, dtype)].ok:
                result.comparisons.append(_compare(result, a, b, dtype))
    result.lab_checks = _lab_checks(result)
    return result


def _compare(result: ScenarioResult, a: str, b: str, dtype: str) -> Comparison:
    """The pair's runs compared by the agreement rule; its measured rounding term (``R``,
    ``harness.judge.rounding``) for a pair of sides that compute the same arithmetic (one optimizer
    convention, or one the conventions share), made only if the fixed terms reject the pair."""
    ra, rb = result.runs[(a, dtype)], result.runs[(b, dtype)]
    tol = result.scenario.tolerances[dtype]
    other_formulas = (ra.convention not in ("", COMMON) and rb.convention not in ("", COMMON)
                      and ra.convention != rb.convention)
    # a side that computed some of it in another dtype (a backend's dtype rule: narrowed operations)
    # is not the reference's rounding in ``dtype``: its control runs explain it, not R
    other_dtype = any(narrowed(label, run) or any(d != dtype for d in run.computed_dtypes.values())
                      for label, run in ((a, ra), (b, rb)))
    if not tol.measured or other_formulas or other_dtype:
        return compare(ra, rb, tol)  # a tolerance set by hand; or other arithmetic: not a difference of rounding

    def measured() -> dict[str, np.ndarray]:
        errors = [rounding_of(result, label, dtype) for label in (a, b)]
        return {name: np.maximum(errors[0][name], errors[1][name]) for name in errors[0]}
    return compare(ra, rb, tol, rounding=measured)


def rounding_of(result: ScenarioResult, label: str, dtype: str) -> Errors:
    """The measured rounding error (``harness.judge.rounding``) of the computation the run ``label``
    makes in ``dtype``, on the reference computing its scenario in its optimizer convention (kept in
    ``result.rounding``: measured once per computation)."""
    run = result.runs[(label, dtype)]
    if framework_of(label) == REFERENCE:
        scenario = result.scenario_for(label)
    else:
        reference = bridge_of(result, label, dtype)
        scenario = (result.scenario_for(reference) if reference is not None
                    else with_convention(result.scenario, run.convention) if run.convention in CONVENTIONS
                    else result.scenario_for(label))
    key = (scenario.name, repr((scenario.training, scenario.layers)), dtype)
    if key not in result.rounding:
        result.rounding[key] = rounding_error(side_plan(result.plans[dtype], scenario))
    return result.rounding[key]


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


def _explain(result: ScenarioResult, dtype: str, *, native: set[str]) -> None:
    """Mark each pair the harness itself chose (both sides native, not a caller's variant) that
    differs only by what the reference accounts for: the optimizer conventions of its sides (each
    side agreeing with the reference in its own convention, and each convention confirmed,
    ``convention_confirmed``) and a framework's narrowing rule (a side whose control run agrees with
    it, ``_account``). ``differences`` names them. A pair with a side that computed in another dtype
    than its own has ``faults``."""
    spec = None if result.scenario.training is None else result.scenario.training.optimizer
    accounted = {label: _account(result, label, dtype) for label in result.frameworks}
    for label, (ok, rule) in accounted.items():
        if ok and rule:
            result.rules[(label, dtype)] = rule
    _check_rules(result, dtype)
    for c in result.comparisons:
        if c.dtype != dtype:
            continue
        c.faults = [fault for side in (c.a, c.b) if (fault := result.dtype_fault(side, dtype))]
        if c.a not in native or c.b not in native:
            continue
        ca, cb = result.runs[(c.a, dtype)].convention, result.runs[(c.b, dtype)].convention
        parts, conventions = [], []
        if spec is not None and COMMON not in (ca, cb) and ca and cb and ca != cb:
            parts.append(difference(spec, ca, cb) or "")
            conventions = [ca, cb]
        parts += [accounted[side][1] for side in (c.a, c.b) if accounted[side][1]]
        c.differences = [p for p in parts if p]
        c.explained = (bool(c.differences) and accounted[c.a][0] and accounted[c.b][0]
                       and all(convention_confirmed(result, x, dtype) for x in conventions))
        if c.differences and not any(framework_of(label) == REFERENCE for label in result.frameworks):
            c.unconfirmed = (f"the reference ({REFERENCE}) is needed to confirm it, and did not run: add "
                             f"{REFERENCE} to --frameworks")


def _check_rules(result: ScenarioResult, dtype: str) -> None:
    """Each reference run in an optimizer convention against that convention's update rule,
    computed independently (``harness.judge.textbook``), into ``rule_checks``."""
    training = result.scenario.training
    for label in result.frameworks:
        run = result.runs[(label, dtype)]
        if training is None or convention_of(label) is None or not run.ok or run.convention in ("", COMMON):
            continue
        result.rule_checks[(label, dtype)] = check_rule(label, run, result.scenario_for(label),
                                                        result.scenario.tolerances[dtype])


def check_rule(label: str, run: Trajectory, scenario: Scenario, tolerance: Tolerance) -> RuleCheck:
    """A reference run (of ``scenario``) against the update rule of the convention it computed."""
    spec = scenario.training_spec.optimizer
    return check_run(label, run, optimizer=spec.name, learning_rate=spec.learning_rate, options=spec.options,
                     convention=run.convention, tolerance=tolerance)


def in_convention(result: ScenarioResult, convention: str, dtype: str) -> list[str]:
    """The frameworks (not the reference) whose run in ``dtype`` computed ``convention``."""
    return [label for label in result.frameworks if framework_of(label) != REFERENCE
            and (run := result.runs.get((label, dtype))) is not None and run.ok and run.convention == convention]


def convention_confirmed(result: ScenarioResult, convention: str, dtype: str) -> bool:
    """What a convention difference rests on, none of it the code it explains: the reference in
    ``convention`` follows that convention's update rule computed independently (``rule_checks``),
    and every framework computing ``convention`` agrees with it (or its control run does,
    ``_account``). Re-running the reference in the other convention would run the very code being
    checked, so it is no evidence."""
    check = result.rule_checks.get((reference_in(convention), dtype))
    return (check is not None and check.ok
            and all(_account(result, label, dtype)[0] for label in in_convention(result, convention, dtype)))


def _account(result: ScenarioResult, label: str, dtype: str) -> tuple[bool, str]:
    """Whether the reference accounts for ``label``'s run: (True, "") when it is the reference or
    agrees with the reference in its convention; (True, the rule) when its control run with its
    framework's narrowing rule off agrees with it instead; else (False, "")."""
    if framework_of(label) == REFERENCE:
        return True, ""
    reference = bridge_of(result, label, dtype)
    if reference is None:
        return False, ""
    direct = _pair(result, label, reference, dtype)
    if direct is not None and direct.agree:
        return True, ""
    control = _pair(result, control_label(label), reference, dtype)
    if control is None or not control.agree:
        return False, ""
    narrowed = result.runs[(label, dtype)].narrowed_ops
    ops = ", ".join(op if dt == "float32" else f"{op} (to {dt})" for op, dt in narrowed.items())
    rule = adapter(framework_of(label)).narrowing_rule
    return True, f"{label}: {rule} (in {ops}; with it off, {control_label(label)} agrees with {reference})"


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
