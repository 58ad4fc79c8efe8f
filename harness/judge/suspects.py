"""Who a disagreement points at: with three or more implementations in a dtype, the one that
disagrees with every other while those agree among themselves is the *suspect*; a two-way
disagreement, or no clear odd one out, names none ("no majority"). A reference run in one optimizer
convention that does not follow that convention's update rule, computed independently
(``harness.judge.textbook``), is the suspect itself.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Mapping

from harness.judge.compare import DISAGREE, Comparison
from harness.judge.localisation import Localisation
from harness.judge.result import ScenarioResult, in_convention, names
from harness.judge.runs import Runs
from harness.judge.textbook import OWNERS
from harness.run.labels import REFERENCE, convention_of, framework_of
from reference.optimizers import CONVENTIONS, formulas


@dataclass(frozen=True)
class Suspect:
    """Who a disagreement in ``dtype`` points at: ``label`` (an implementation, e.g. ``torch``)
    when it disagrees with every other implementation and those agree among themselves (states
    ``agree`` or ``differ, explained``), else None: no majority, and ``reason`` says why."""

    dtype: str
    label: str | None
    others: tuple[str, ...]  # the implementations that agree among themselves (empty: no majority)
    step: int | None  # the suspect's first divergent step against any of the others
    stage: str | None  # where within that step the difference shows (``Localisation.stage``)
    reason: str

    def describe(self) -> str:
        return self.reason


def suspects(result: ScenarioResult, dtype: str, *, runs: Runs,
             localisations: Mapping[int, Localisation] | None = None) -> list[Suspect]:
    """Who the disagreements of ``dtype`` point at; empty when no pair of ``dtype`` disagrees.

    The largest group of implementations that agree among themselves (states ``agree`` or
    ``differ, explained``) is the majority when it holds more than half of them and every other
    implementation disagrees with each of its members: each of those others is a suspect (one
    ``Suspect`` each, e.g. torch; or keras@jax and keras@torch beside numpy, keras and torch).
    Otherwise one ``Suspect`` with no label says why there is no majority. Implementations are
    frameworks: the reference's runs in each optimizer convention (``numpy[keras]``,
    ``numpy[torch]``) count as one, ``numpy``, whose pair with another framework disagrees when
    any of their compared runs do. ``localisations`` (by ``id`` of the comparison, as
    ``diagnose`` makes them) give the stage of each suspect's first divergence.

    Within an optimizer convention the reference's run in it is checked against the convention's
    update rule computed independently (``ScenarioResult.rule_checks``): a run that fails its check
    is the suspect (e.g. ``numpy[keras]``), whatever the majority says, since the other convention's
    reference would otherwise outvote it. When a convention is computed only by the reference and
    one framework, they disagree and the check did not reach the step where they do, nothing
    decides between them: that framework is not named, and the no-majority reason says which
    implementation would break the tie."""
    compared = [c for c in result.comparisons if c.dtype == dtype and framework_of(c.a) != framework_of(c.b)]
    disagreeing = [c for c in compared if c.state == DISAGREE]
    if not disagreeing:
        return []
    wrong_rule = [check for (_, dt), check in result.rule_checks.items() if dt == dtype and check.failed]
    if wrong_rule:  # the reference in a convention is not that convention's rule: that run is the suspect
        return [Suspect(dtype, check.label, (), check.bad_step, f"updated {check.quantity}",
                        f"{check.describe()}: suspect {check.label}, from step {check.bad_step} at "
                        f"`updated {check.quantity}`") for check in wrong_rule]
    found = _majority(result, dtype, compared, disagreeing, localisations)
    undecided = _undecided_conventions(result, dtype, disagreeing, runs)
    return [x for x in found if x.label not in undecided] + list(undecided.values())


CONVENTION_NAMES = {"keras": "the Keras convention", "keras-unrounded": "the Keras convention unrounded",
                    "torch": "the torch convention"}


def _undecided_conventions(result: ScenarioResult, dtype: str, disagreeing: list[Comparison],
                           runs: Runs) -> dict[str, Suspect]:
    """framework -> a no-majority ``Suspect``, for each framework that alone computes a convention
    beside the reference in it, disagrees with it, and whose disagreement the reference's check
    against the convention's rule (``rule_checks``) did not reach: which of the two is wrong
    within that convention, nothing here can tell."""
    out = {}
    spec = result.scenario.training.optimizer if result.scenario.training is not None else None
    for c in disagreeing:
        reference, other = (c.a, c.b) if convention_of(c.a) else (c.b, c.a)
        convention = convention_of(reference)
        if convention is None or convention_of(other) or spec is None:
            continue
        check = result.rule_checks.get((reference, dtype))
        step = c.first_divergent_step if c.first_divergent_step is not None else 0
        if (check is not None and check.covers(step)) or in_convention(result, convention, dtype) != [other]:
            continue
        ran = {framework_of(label) for label in result.frameworks}
        family = formulas(convention)
        tie = [fw for fw in runs.frameworks if fw not in ran and fw != REFERENCE
               and runs.adapter(fw).native_convention(spec) in CONVENTIONS
               and formulas(runs.adapter(fw).native_convention(spec)) == family]
        breaker = (f"run with --frameworks all: {names(tie)} compute{'s' if len(tie) == 1 else ''} "
                   f"{OWNERS[family]} formulas too" if tie else
                   "no other implementation here computes its formulas")
        reach = ("the reference could not be checked against the convention's rule" if check is None else
                 f"the check of {reference} against {check.rule} reaches step {check.steps - 1} only "
                 f"({check.message or 'its budget'}), the difference is at step {step}")
        out[other] = Suspect(dtype, None, (), step, None,
                             f"no majority within {CONVENTION_NAMES.get(convention, convention)} ({reference} vs "
                             f"{other}): only they compute it here and {reach}; to break the tie, {breaker}")
    return out


def _majority(result: ScenarioResult, dtype: str, compared: list[Comparison], disagreeing: list[Comparison],
              localisations: Mapping[int, Localisation] | None) -> list[Suspect]:
    """The majority rule of ``suspects`` over the implementations (the reference as one)."""
    implementations = list(dict.fromkeys(framework_of(label) for label in result.frameworks
                                         if result.runs.get((label, dtype)) is not None
                                         and result.runs[(label, dtype)].ok))
    states: dict[frozenset[str], bool] = {}  # framework pair -> disagrees
    for c in compared:
        key = frozenset((framework_of(c.a), framework_of(c.b)))
        states[key] = states.get(key, False) or c.state == DISAGREE
    bad = ["-".join(sorted(k, key=implementations.index)) for k, v in states.items() if v]
    if len(implementations) < 3:
        return [Suspect(dtype, None, (), None, None,
                        f"no majority in {dtype}: only two implementations ({names(implementations)}), "
                        "so their disagreement cannot say which one is wrong")]
    complete = all(frozenset((x, y)) in states for i, x in enumerate(implementations)
                   for y in implementations[i + 1:])
    majority: tuple[str, ...] = ()
    if complete:
        for size in range(len(implementations) - 1, len(implementations) // 2, -1):  # more than half
            groups = [g for g in itertools.combinations(implementations, size)
                      if not any(states[frozenset((x, y))] for x, y in itertools.combinations(g, 2))
                      and all(states[frozenset((o, m))] for o in implementations if o not in g for m in g)]
            if len(groups) == 1:
                majority = groups[0]
                break
            if groups:  # two equally large groups: no majority
                break
    if not majority:
        why = (f"not every pair of {names(implementations)} was compared" if not complete else
               f"no group of more than half of {names(implementations)} agrees among itself while each "
               "other one differs from all of its members")
        return [Suspect(dtype, None, (), None, None,
                        f"no majority in {dtype}: {why} (disagreeing pairs: {', '.join(bad)})")]
    out = []
    odd_ones = [x for x in implementations if x not in majority]
    for odd in odd_ones:
        mine = [c for c in disagreeing if {framework_of(c.a), framework_of(c.b)} & {odd}
                and {framework_of(c.a), framework_of(c.b)} & set(majority)]  # against the majority
        first = min(mine, key=lambda c: c.first_divergent_step if c.first_divergent_step is not None else 0)
        step = first.first_divergent_step if first.first_divergent_step is not None else 0  # 0: a dtype fault
        loc = (localisations or {}).get(id(first))
        stage = None if loc is None else loc.stage
        where = f"from step {step}" + (f" at `{stage}`" if stage else "")
        also = [x for x in odd_ones if x != odd]
        differs = f"{odd} differs" if not also else f"{odd} (as {names(also)}) differs"
        out.append(Suspect(dtype, odd, majority, step, stage,
                           f"{differs} from {names(list(majority))}, which agree: suspect {odd}, {where}"))
    return out


def suspect(result: ScenarioResult, dtype: str, *, runs: Runs,
            localisations: Mapping[int, Localisation] | None = None) -> Suspect | None:
    """The one suspect (or the no-majority reason) of ``dtype`` when there is exactly one
    (``suspects``); None when nothing disagrees."""
    found = suspects(result, dtype, runs=runs, localisations=localisations)
    return found[0] if found else None
