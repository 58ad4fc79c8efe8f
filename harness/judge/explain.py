"""A scenario's pairs explained: a pair of two native sides that differs only by what the reference
accounts for -- the optimizer conventions of its sides (each side agreeing with the reference in its
own convention, each convention's reference run following that convention's update rule computed
independently, ``harness.judge.textbook``), a framework's narrowing rule (a side whose control
run, with the rule off, agrees with the reference, or differs from it by a measured property of its
framework alone) and a real property of a framework (a side that
agrees with the reference until the property, confirmed by a measurement that runs none of its
code, takes its run out of the finite numbers, ``harness.judge.properties``) -- differs, explained,
and names them. ``nn-parity run``, the reports and the fuzzer's oracle all read this one judgement.
"""
from __future__ import annotations

from harness.judge.compare import Comparison
from harness.judge.properties import property_of
from harness.judge.result import ScenarioResult, bridge_of, in_convention
from harness.judge.runs import Runs
from harness.judge.textbook import check_rule
from harness.run.labels import REFERENCE, control_label, convention_of, framework_of, reference_in
from harness.spec.conventions import COMMON, convention_difference


def explain(result: ScenarioResult, dtype: str, *, native: set[str], runs: Runs) -> None:
    """Mark each pair the harness itself chose (both sides native, not a caller's variant) that
    differs only by what the reference accounts for: the optimizer conventions of its sides (each
    side agreeing with the reference in its own convention, and each convention confirmed,
    ``convention_confirmed``) and a framework's narrowing rule (a side whose control run agrees with
    it, or differs from it by a property alone, ``account``). ``differences`` names them. A pair with a
    side that computed in another dtype than its own has ``faults``; a control pair its property accounts
    for differs, explained (``_explain_control``)."""
    spec = None if result.scenario.training is None else result.scenario.training.optimizer
    for label in result.frameworks:
        reference = bridge_of(result, label, dtype)
        if framework_of(label) == REFERENCE or reference is None:
            continue
        # the run itself, and its control run with its narrowing rule off (which ``account`` may need)
        for side in (label, control_label(label)):
            if (side, dtype) in result.runs and (found := property_of(result, side, reference, dtype,
                                                                      runs)) is not None:
                result.properties[(side, dtype)] = found
    accounted = {label: account(result, label, dtype, runs) for label in result.frameworks}
    for label, (ok, rule) in accounted.items():
        if ok and rule and (label, dtype) not in result.properties:
            result.rules[(label, dtype)] = rule
    _check_rules(result, dtype)
    for c in result.comparisons:
        if c.dtype != dtype:
            continue
        c.faults = [fault for side in (c.a, c.b) if (fault := result.dtype_fault(side, dtype))]
        if c.a not in native or c.b not in native:
            _explain_control(result, c)
            continue
        ca, cb = result.runs[(c.a, dtype)].convention, result.runs[(c.b, dtype)].convention
        parts, conventions = [], []
        if spec is not None and COMMON not in (ca, cb) and ca and cb and ca != cb:
            parts.append(convention_difference(spec, ca, cb) or "")
            conventions = [ca, cb]
        parts += [accounted[side][1] for side in (c.a, c.b) if accounted[side][1]]
        c.differences = [p for p in parts if p]
        c.explained = (bool(c.differences) and accounted[c.a][0] and accounted[c.b][0]
                       and all(convention_confirmed(result, x, dtype, runs) for x in conventions))
        if c.differences and not any(framework_of(label) == REFERENCE for label in result.frameworks):
            c.unconfirmed = (f"the reference ({REFERENCE}) is needed to confirm it, and did not run: add "
                             f"{REFERENCE} to --frameworks")


def _explain_control(result: ScenarioResult, c: Comparison) -> None:
    """A native run's control run (its narrowing rule off) against the run's reference, when a property of
    its framework, measured, accounts for the control run (``account`` rests on it): differs, explained."""
    controls = {control_label(label) for label in result.frameworks}
    for side, other in ((c.a, c.b), (c.b, c.a)):
        found = result.properties.get((side, c.dtype))
        if side in controls and found is not None and found.reference == other:
            c.differences, c.explained = [found.describe()], True


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


def convention_confirmed(result: ScenarioResult, convention: str, dtype: str, runs: Runs) -> bool:
    """What a convention difference rests on, none of it the code it explains: the reference in
    ``convention`` follows that convention's update rule computed independently (``rule_checks``),
    and every framework computing ``convention`` agrees with it (or its control run does,
    ``account``). Re-running the reference in the other convention would run the very code being
    checked, so it is no evidence."""
    check = result.rule_checks.get((reference_in(convention), dtype))
    return (check is not None and check.ok
            and all(account(result, label, dtype, runs)[0] for label in in_convention(result, convention, dtype)))


def account(result: ScenarioResult, label: str, dtype: str, runs: Runs) -> tuple[bool, str]:
    """Whether the reference accounts for ``label``'s run: (True, "") when it is the reference or
    agrees with the reference in its convention, computing in its own dtype; (True, the property) when
    it differs from it by a property of its framework, measured (``properties``); (True, the rule) when
    its control run with its framework's narrowing rule off, computing in its own dtype, agrees with it
    instead, or differs from it by a property of its framework alone (the rule and the property each
    measured on its own); else (False, ""). A run that agrees in its values and still computed in another
    dtype (values a float32 computation gives exactly, e.g. zeros) is accounted for by the rule alone."""
    if framework_of(label) == REFERENCE:
        return True, ""
    reference = bridge_of(result, label, dtype)
    if reference is None:
        return False, ""
    direct = result.pair(label, reference, dtype)
    if direct is not None and direct.agree and not result.wrong_dtypes(label, dtype):
        return True, ""
    if (found := result.properties.get((label, dtype))) is not None:
        return True, found.describe()
    control = control_label(label)
    pair = result.pair(control, reference, dtype)
    if pair is None or result.wrong_dtypes(control, dtype):
        return False, ""
    if pair.agree:
        off = f"{control} agrees with {reference}"
    elif (found := result.properties.get((control, dtype))) is not None:
        off = f"{control} differs from {reference} only by {found.describe()}"
    else:
        return False, ""
    narrowed = result.runs[(label, dtype)].narrowed_ops
    ops = ", ".join(op if dt == "float32" else f"{op} (to {dt})" for op, dt in narrowed.items())
    rule = runs.adapter(framework_of(label)).narrowing_rule
    return True, f"{label}: {rule} (in {ops}; with it off, {off})"

