"""The fuzzer's oracle is the harness's own judgement: an example runs through the runner in every
chosen implementation and dtype, exactly as ``nn-parity run`` runs a file. A result that is ok
(every pair agrees or differs, explained) is no finding: one that differs, explained, by a real
property of a framework (``ScenarioResult.properties``, ``harness.judge.properties``: the same
judgement as ``nn-parity run``'s) is counted as such with the property's name; a scenario
ill-conditioned by nature (the reference itself leaves the finite numbers; rounding alone decides
whether a run stays finite or when it stops; its sums overflow; a softmax over an axis of length 1) is counted with its
reason; anything else is a finding,
named by its fingerprints (``fingerprint``), and a fault of the harness itself (an exception the
runner or the diagnosis raises) is one too."""
from __future__ import annotations

from dataclasses import dataclass

from harness.errors import BadInput
from harness.fuzz.fingerprint import UNKNOWN, Fingerprint, of_result
from harness.fuzz.space import Example
from harness.judge.arithmetic import overflowing_sums
from harness.judge.compare import DISAGREE
from harness.judge.result import ScenarioResult
from harness.pipeline import diagnose, run_scenario
from harness.run.adapters import REFERENCE
from harness.run.labels import framework_of
from harness.run.plan import side_plan
from harness.spec.scenario import Scenario, rows_per_batch

OK, ILL_CONDITIONED, NOT_RUNNABLE, FINDING = "ok", "ill-conditioned", "not runnable", "finding"
EXPLAINED = "differ, explained"  # ok, a pair explained by a framework's property (``ScenarioResult.properties``)


@dataclass(frozen=True)
class Outcome:
    kind: str  # OK, EXPLAINED, ILL_CONDITIONED, NOT_RUNNABLE or FINDING
    fingerprints: frozenset[Fingerprint] = frozenset()
    reason: str = ""  # why ill-conditioned or not runnable


NONFINITE = "the reference's loss or parameters leave the finite numbers"
OVERFLOWING = ("the reference's sums overflow (a matrix product or a sum of finite numbers is inf or nan), so the "
               "order of the additions, which BLAS kernels and frameworks choose differently, decides the result")
ROUNDING_DECIDES = ("rounding decides the runs where a pair disagrees (the reference's run with every result "
                    "moved one ulp leaves the finite numbers, stops at another step, or moves the loss or a "
                    "parameter by a tenth of its size; or one run stops early where the other's loss change is "
                    "within the early stop's tolerance plus what the agreement rule lets two losses differ by)")


def ill_conditioned(result: ScenarioResult) -> dict[str, str]:
    """dtype -> why the scenario is ill-conditioned by nature in it: the reference's own run leaves
    the finite numbers, or a pair disagrees where rounding alone decides the runs
    (``Comparison.rounding_decides``: the agreement rule's measured rounding, ``harness.judge.rounding``),
    or a pair disagrees and the reference's sums overflow (``harness.judge.arithmetic.overflowing_sums``)."""
    out = {}
    for (label, dtype), run in result.runs.items():
        if framework_of(label) == REFERENCE and run.ok and run.first_nonfinite_step is not None:
            out[dtype] = NONFINITE
    for c in result.comparisons:
        if c.state == DISAGREE and c.rounding_decides and c.dtype not in out:
            out[c.dtype] = ROUNDING_DECIDES
    for dtype in result.dtypes:
        if dtype not in out and any(c.state == DISAGREE and c.dtype == dtype for c in result.comparisons) and any(
                overflowing_sums(side_plan(result.plans[dtype], result.scenario_for(label)))
                for label in result.frameworks if framework_of(label) == REFERENCE):
            out[dtype] = OVERFLOWING
    return out


def degenerate(scenario: Scenario, rows: int) -> str:
    """Why the scenario computes something degenerate by nature ("" when it does not): a softmax over
    an axis of length 1 (one unit, or the rows of a batch of one row), identically 1 whatever its
    input, so nothing before it reaches the outputs."""
    training = scenario.training
    size = None if training is None else rows_per_batch(training, rows)
    sizes = {rows} if size is None else {size, rows % size or rows}
    for i, layer in enumerate(scenario.layers):
        length = {layer.units} if layer.axis in (-1, 1) else sizes
        if layer.activation == "softmax" and 1 in length:
            return f"a softmax over an axis of length 1 (model.layers[{i}], axis {layer.axis}): identically 1"
    return ""


def judge_example(example: Example, *, frameworks: tuple[str, ...], dtypes: tuple[str, ...]) -> Outcome:
    """What the harness says of ``example`` (module docstring)."""
    scenario = example.scenario()
    try:
        result = run_scenario(scenario, frameworks=frameworks, dtypes=dtypes)
    except BadInput as exc:
        return Outcome(NOT_RUNNABLE, reason=exc.expected)
    except Exception as exc:  # a fault of the harness is a finding, never the end of a campaign
        return Outcome(FINDING, frozenset({Fingerprint("harness", "run", type(exc).__name__, "-", UNKNOWN)}))
    return verdict(result)


def verdict(result: ScenarioResult) -> Outcome:
    """What the harness says of a result already made (``judge`` after its runs)."""
    if result.ok:
        why = degenerate(result.scenario, result.plans[result.dtypes[0]].X.shape[0])
        properties = sorted({found.cause.name for found in result.properties.values()})
        return (Outcome(ILL_CONDITIONED, reason=why) if why else
                Outcome(EXPLAINED, reason="; ".join(properties)) if properties else Outcome(OK))
    ill = ill_conditioned(result)
    try:
        diagnoses = diagnose(result)
    except Exception as exc:  # as above
        return Outcome(FINDING, frozenset({Fingerprint("harness", "diagnosis", type(exc).__name__, "-", UNKNOWN)}))
    found = frozenset(f for f in of_result(result, diagnoses) if f.dtype not in ill)
    if not found and ill:  # what differs, differs where the reference itself is not finite
        return Outcome(ILL_CONDITIONED, reason="; ".join(sorted(set(ill.values()))))
    if not found:  # not ok, and nothing the fingerprints name: still never a silent pass
        found = frozenset({Fingerprint("harness", "verdict", "not ok", "-", UNKNOWN)})
    return Outcome(FINDING, found)
