"""Why two runs of a scenario diverge: for every pair that disagrees or drifts, one ``Diagnosis`` that
answers four questions in turn, each in a module of its own:

1. **When**: the first step and parameter whose difference crosses the tolerance, or, for a pair
   that drifts, the step where it comes closest (``harness.judge.localisation``).
2. **Where within that step**: the stage, in data-flow order, where the difference appears
   (``harness.judge.localisation``: both sides replay the step stage by stage).
3. **Why**: the first known cause (``harness.judge.causes.registry.CAUSES``) that applies and is
   confirmed, by a control run (``harness.judge.controls``) or by an exact measurement of what one
   side computed (``harness.judge.causes.evidence``); a convention difference is separated into its
   parts (``harness.judge.contributions``).
4. **Who**: the implementation the disagreements of the pair's dtype point at, or why none can be
   named (``harness.judge.suspects``).

The traces and control runs are made by the ``Runs`` passed in (``harness.judge.runs``;
``harness.pipeline.diagnose`` passes the adapters').
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.judge.causes.evidence import Evidence, Finding
from harness.judge.causes.registry import Cause, name_cause
from harness.judge.compare import DISAGREE, Comparison
from harness.judge.contributions import Contribution, contributions
from harness.judge.controls import ControlRun, Pair
from harness.judge.localisation import DRIFT_FRACTION, Localisation, Traces, localise
from harness.judge.result import ScenarioResult, names
from harness.judge.runs import Runs
from harness.judge.suspects import Suspect, suspects
from harness.run.labels import framework_of
from harness.run.plan import side_plan
from harness.run.progress import Progress

NO_CAUSE = "no known cause confirmed"


@dataclass
class Diagnosis:
    """``kind``: ``disagree`` (diagnosed at the first divergent step) or ``drift`` (an agreeing
    pair diagnosed at the step where it uses the largest fraction of its tolerance)."""

    comparison: Comparison
    kind: str
    step: int
    quantity: str
    fraction: float  # of the tolerance used by ``quantity`` at ``step`` (> 1 beyond it)
    localisation: Localisation
    cause: Cause | None = None
    confirmed_by: ControlRun | Finding | None = None  # the agreeing control run, or the measurement
    controls: list[ControlRun] = field(default_factory=list)  # every control run tried, in order
    # Who is suspected in the pair's dtype: set for a disagreeing pair (the odd one out when it is a
    # side of this pair, else "no majority"); None for a drift or a pair that differs, explained.
    suspect: Suspect | None = None
    # for an optimizer convention that bundles a formula with different default options: how
    # much each part contributes on its own (``contributions``)
    contributions: list[Contribution] = field(default_factory=list)

    @property
    def cause_name(self) -> str:
        return self.cause.name if self.cause else NO_CAUSE

    @property
    def stage(self) -> str | None:
        """Where within the step the difference shows first (``Localisation.stage``)."""
        return self.localisation.stage


def diagnose(result: ScenarioResult, *, runs: Runs, progress: Progress | None = None) -> list[Diagnosis]:
    """A diagnosis for every pair that disagrees or drifts (uses >= DRIFT_FRACTION of its tolerance);
    its traces and control runs are made by ``runs``."""
    out: list[Diagnosis] = []
    cache: Traces = {}
    for c in result.comparisons:
        if c.faults and c.agree:  # within the tolerance, and still a side is not a run of the pair's dtype
            kind, step, quantity = "disagree", 0, "computed dtype"
            fraction = 0.0 if c.closest is None else c.closest[2]
        elif c.agree:
            if c.closest is None or c.closest[2] < DRIFT_FRACTION:
                continue
            kind, (step, quantity, fraction) = "drift", c.closest
        else:
            assert c.first_divergent_step is not None, "a pair that disagrees has a first divergent step"
            kind, step = "disagree", c.first_divergent_step
            quantity = c.mismatch.quantity if c.mismatch else "steps"
            fraction = c.mismatch.diff / c.mismatch.allowed if c.mismatch and c.mismatch.allowed else float("inf")
        pair = Pair(result, c, runs)
        localisation = localise(result, c, step, runs=runs, progress=progress, cache=cache)
        evidence = _evidence(result, c, step, localisation, cache, runs)
        # runs that agree until one stops: nothing differs at a step both made for a cause to explain
        cause, confirmed_by, tried = (None, None, []) if localisation.early_stop else \
            name_cause(pair, evidence=evidence, progress=progress)
        out.append(Diagnosis(c, kind, step, quantity, fraction, localisation, cause, confirmed_by, tried))
    separated: dict[str, list[Contribution]] = {}
    for d in out:
        if d.cause is not None and d.cause.name == "optimizer convention":
            if d.comparison.dtype not in separated:
                separated[d.comparison.dtype] = contributions(result, d.comparison.dtype, runs=runs, progress=progress)
            d.contributions = separated[d.comparison.dtype]
    localisations = {id(d.comparison): d.localisation for d in out}
    for dtype in result.dtypes:
        found = suspects(result, dtype, runs=runs, localisations=localisations)
        named = [x for x in found if x.label is not None]
        for d in out:
            c = d.comparison
            if c.dtype != dtype or c.state != DISAGREE or not found:
                continue
            labels = {c.a, c.b, framework_of(c.a), framework_of(c.b)}
            sides = [x for x in named if x.label in labels]
            # a pair with neither side suspected rests on the one suspect (e.g. the reference in a
            # convention, which explained it); else the no-majority reason
            d.suspect = sides[0] if len(sides) == 1 else next((x for x in found if x.label is None),
                                                               named[0] if len(named) == 1 else None)
            if len(sides) == 2:  # two suspects against each other: each already differs from the majority
                others = f" from {names(list(sides[0].others))}, which agree" if sides[0].others else ""
                d.suspect = Suspect(dtype, None, sides[0].others, None, None,
                                    f"both {sides[0].label} and {sides[1].label} differ{others}: suspects "
                                    f"{sides[0].label} and {sides[1].label}")
    return out


def _evidence(result: ScenarioResult, c: Comparison, step: int, localisation: Localisation,
              traces: Traces, run_floor: Runs) -> Evidence | None:
    """What the measured causes look at; None for a forward-only scenario or a run that failed."""
    runs = {label: result.runs.get((label, c.dtype)) for label in (c.a, c.b)}
    plan = result.plans.get(c.dtype)
    if plan is None or not result.scenario.trains or any(r is None or not r.ok for r in runs.values()):
        return None
    return Evidence(a=c.a, b=c.b, dtype=c.dtype, step=step, stage=localisation.stage,
                    runs={k: v for k, v in runs.items() if v is not None},
                    scenarios={label: result.scenario_for(label) for label in (c.a, c.b)},
                    traces={label: traces[(label, c.dtype, step)] for label in (c.a, c.b)
                            if (label, c.dtype, step) in traces},
                    plan=side_plan(plan, result.scenario_for(c.a)), tolerance=result.scenario.tolerances[c.dtype],
                    run_floor=run_floor)
