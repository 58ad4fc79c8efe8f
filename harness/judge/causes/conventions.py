"""Causes the reference accounts for, confirmed by bridges through it: an optimizer convention (each
side against the reference in its own convention, each such reference run against the convention's
update rule computed independently) and a framework's dtype rule (the side's control run with the
rule off against the reference).
"""
from __future__ import annotations

from dataclasses import replace

from harness.judge.controls import Control, Pair
from harness.judge.result import ScenarioResult, bridge_of, in_convention
from harness.judge.runs import narrowed
from harness.run.labels import REFERENCE, control_label, convention_of, framework_of, reference_in, with_convention
from harness.spec.scenario import Scenario


def reference_scenario_in(result: ScenarioResult, convention: str) -> Scenario:
    """The scenario of the reference run in ``convention`` (the run's own object when it ran, so
    its trajectory is reused)."""
    label = reference_in(convention)
    return result.scenario_for(label) if label in result.frameworks else with_convention(result.scenario, convention)


def convention_control(pair: Pair) -> list[Control]:
    """What a convention difference rests on (as ``harness.judge.explain.convention_confirmed``), none
    of it the code it explains: each framework side against the reference in its convention, and a
    reference side against each framework computing its convention (one whose dtype rule the pipeline
    confirmed: its control run with the rule off); and each convention's reference run
    against that convention's update rule computed independently. A framework side cannot run the
    other's convention, and the reference re-run in the other side's convention is the other
    side's own code when that side is the reference too: neither is evidence. Empty when no
    framework computes either convention."""
    c, result = pair.comparison, pair.result
    bridges: dict[str, Control] = {}
    rules: dict[str, Scenario] = {}
    for label, scenario in ((c.a, pair.a), (c.b, pair.b)):
        convention = pair.run(label).convention
        if framework_of(label) == REFERENCE:
            reference, reference_scenario, sides = label, scenario, in_convention(result, convention, c.dtype)
        else:
            reference, reference_scenario, sides = (reference_in(convention), reference_scenario_in(result, convention),
                                                    [label])
        rules.setdefault(reference, reference_scenario)
        for side in sides:
            run_as, what = side, side
            # a framework computing a reference side's convention whose dtype rule the pipeline confirmed:
            # its control run with the rule off (a framework side's rule is a cause of its own, below)
            if side != label and (side, c.dtype) in result.rules:
                run_as = control_label(side)
                what = f"{side} with {pair.runs.adapter(framework_of(side)).narrowing_rule} off"
            description = f"{what} vs {reference} ({c.dtype})"
            bridges.setdefault(description, Control(description, c.dtype, result.scenario_for(run_as),
                                                    reference_scenario, frameworks=(run_as, reference), drift_ok=True))
    if not bridges:
        return []
    first, *others = bridges.values()
    return [replace(first, also=tuple(others), rules=tuple(rules.items()))]


def narrowed_sides(pair: Pair) -> list[str]:
    """The sides whose framework has a narrowing rule and whose run narrowed operations."""
    c = pair.comparison
    return [label for label in (c.a, c.b) if narrowed(pair.runs, label, pair.run(label))]


def rule_control(pair: Pair) -> list[Control]:
    """The bridge with each narrowing side's rule turned off: that side's control run (the pipeline's,
    ``control_label``, reused when it ran) against the reference in its convention, and the other
    side against the reference in its own (both must agree: then the rule, with any convention
    difference the reference computes, is the whole difference)."""
    c, result = pair.comparison, pair.result
    narrowing = narrowed_sides(pair)
    bridges = []
    # a narrowing side first: the first control's description is the diagnosis' summary
    for label, scenario in sorted(((c.a, pair.a), (c.b, pair.b)), key=lambda side: side[0] not in narrowing):
        if framework_of(label) == REFERENCE:
            continue
        reference = bridge_of(result, label, c.dtype)
        if reference is None:  # the reference did not run: no bridge
            return []
        side, what = label, label
        if label in narrowing:
            rule = pair.runs.adapter(framework_of(label)).narrowing_rule
            side, what = control_label(label), f"{label} with {rule} off"
            scenario = result.sides.get(side) or replace(scenario, keep_64_bit=True)
        bridges.append(Control(f"{what} vs {reference} ({c.dtype})", c.dtype, scenario, result.scenario_for(reference),
                               frameworks=(side, reference), drift_ok=True))
    # the references of a convention difference, each against its convention's rule (as the convention's control)
    rules = tuple((b.frameworks[1], b.scenario_b) for b in bridges
                  if b.frameworks is not None and convention_of(b.frameworks[1]) is not None)
    first, *others = bridges
    return [replace(first, also=tuple(others), rules=rules)]
