"""A scenario's runs judged: the pairs compared by the agreement rule (with the measured rounding
term R where the fixed terms reject a pair of the same arithmetic), accuracy of classifiers, the
lab's printed values against the reference, and which control runs the runs call for (a run whose
framework narrowed operations and that disagrees with the reference).

The control runs are made by the pipeline (``harness.pipeline``) and explained by
``harness.judge.explain``; nothing here makes a framework run (``Runs`` answers the judge's
questions about an implementation).
"""
from __future__ import annotations

import numpy as np

from harness.judge.compare import Comparison, compare, stop_within_rule
from harness.judge.lab_values import LabCheck, check_lab_value
from harness.judge.metrics import ACCURACY_LOSSES, evaluate
from harness.judge.result import ScenarioResult, bridge_of, reference_label
from harness.judge.rounding import RUNS, Errors, rounding_error
from harness.judge.runs import Runs, narrowed
from harness.run.labels import REFERENCE, framework_of, pairs_of, with_convention
from harness.run.plan import TrainingPlan, side_plan
from harness.run.trajectory import Trajectory
from harness.spec.conventions import COMMON
from harness.spec.scenario import Scenario
from reference.optimizers import CONVENTIONS


def judge_runs(result: ScenarioResult, runs: Runs) -> ScenarioResult:
    """Accuracy, the pairs compared and the lab's printed values checked (explained in ``harness.judge.explain``,
    once the control runs are made)."""
    scenario = result.scenario
    for dtype in result.dtypes:
        plan = result.plans[dtype]
        for label in result.frameworks:
            run = result.runs[(label, dtype)]
            if run.ok:
                result.accuracy[(label, dtype)] = _accuracy(scenario, run, plan)
        conventions = {label: result.runs[(label, dtype)].convention for label in result.frameworks}
        for a, b in pairs_of(list(result.frameworks), conventions):
            if result.runs[(a, dtype)].ok and result.runs[(b, dtype)].ok:
                result.comparisons.append(compare_pair(result, a, b, dtype, runs))
    result.lab_checks = _lab_checks(result, runs)
    return result


def compare_pair(result: ScenarioResult, a: str, b: str, dtype: str, runs: Runs) -> Comparison:
    """The pair's runs compared by the agreement rule (``compare_runs``); where they part only by an
    early stop that rounding decides (``stop_within_rule``), the comparison says so
    (``rounding_decides``: still a disagreement)."""
    c = _compared(result, a, b, dtype, runs)
    training = result.scenario.training
    if c.agree or c.mismatch is not None or training is None or training.early_stop_tol is None:
        return c
    # the loss's rounding as the pair's comparison counted it (``R``: a pair of the same arithmetic)
    rounding = (np.maximum(*(np.asarray(rounding_of(result, label, dtype)["loss"], dtype=np.float64)
                             for label in (a, b))) if c.rounding else None)
    if stop_within_rule(result.runs[(a, dtype)], result.runs[(b, dtype)], result.scenario.tolerances[dtype],
                        training.early_stop_tol, rounding):
        c.rounding_decides = True
    return c


def _compared(result: ScenarioResult, a: str, b: str, dtype: str, runs: Runs) -> Comparison:
    """The pair's runs compared by the agreement rule; its measured rounding term (``R``,
    ``harness.judge.rounding``) for a pair of sides that compute the same arithmetic (one optimizer
    convention, or one the conventions share), made only if the fixed terms reject the pair."""
    ra, rb = result.runs[(a, dtype)], result.runs[(b, dtype)]
    tol = result.scenario.tolerances[dtype]
    other_formulas = (ra.convention not in ("", COMMON) and rb.convention not in ("", COMMON)
                      and ra.convention != rb.convention)
    # a side that computed some of it in another dtype (a backend's dtype rule: narrowed operations)
    # is not the reference's rounding in ``dtype``: its control runs explain it, not R
    other_dtype = any(narrowed(runs, label, run) or any(d != dtype for d in run.computed_dtypes.values())
                      for label, run in ((a, ra), (b, rb)))
    if not tol.measured or other_formulas or other_dtype:
        return compare(ra, rb, tol)  # a tolerance set by hand; or other arithmetic: not a difference of rounding

    def measured(runs: int) -> dict[str, np.ndarray]:
        errors = [rounding_of(result, label, dtype, runs) for label in (a, b)]
        return {name: np.maximum(errors[0][name], errors[1][name]) for name in errors[0]}
    return compare(ra, rb, tol, rounding=measured)


def rounding_of(result: ScenarioResult, label: str, dtype: str, runs: int = RUNS) -> Errors:
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
    key = (scenario.name, repr((scenario.training, scenario.layers)), dtype, runs)
    if key not in result.rounding:
        result.rounding[key] = rounding_error(side_plan(result.plans[dtype], scenario), runs)
    return result.rounding[key]


def controls_needed(result: ScenarioResult, runs: Runs) -> list[tuple[str, str, str]]:
    """(label, dtype, reference) of every run whose framework has a narrowing rule, that narrowed
    operations and disagrees with ``reference``, the reference in its convention, or agrees with it and
    still computed in another dtype (``ScenarioResult.wrong_dtypes``: values a float32 computation gives
    exactly): each gets a control run with the rule off."""
    out = []
    for dtype in result.dtypes:
        for label in result.frameworks:
            reference = bridge_of(result, label, dtype)
            if not narrowed(runs, label, result.runs[(label, dtype)]) or reference is None:
                continue
            bridge = result.pair(label, reference, dtype)
            if bridge is not None and (not bridge.agree or result.wrong_dtypes(label, dtype)):
                out.append((label, dtype, reference))
    return out


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


def _lab_checks(result: ScenarioResult, runs: Runs) -> list[LabCheck]:
    """Each printed lab value against the reference run of its dtype and convention."""
    checks = []
    for lab in result.scenario.lab_values:
        label = reference_label(result, lab.convention)
        run = None if label is None else result.runs.get((label, lab.dtype))
        if label is None or run is None or not run.ok:
            continue
        checks.append(check_lab_value(lab, run, side_plan(result.plans[lab.dtype], result.scenario_for(label)),
                                      rerun=lambda plan: runs.run(REFERENCE, plan)))
    return checks
