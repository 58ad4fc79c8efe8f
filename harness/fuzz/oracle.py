"""The fuzzer's oracle is the harness's own judgement: an example runs through the runner in every
chosen implementation and dtype, exactly as ``nn-parity run`` runs a file. A result that is ok
(every pair agrees or differs, explained) is no finding; a scenario ill-conditioned by nature (the
reference itself leaves the finite numbers) is counted with its reason; anything else is a finding,
named by its fingerprints (``fingerprint``), and a fault of the harness itself (an exception the
runner or the diagnosis raises) is one too."""
from __future__ import annotations

from dataclasses import dataclass

from harness.errors import BadInput
from harness.fuzz.fingerprint import UNKNOWN, Fingerprint, of_result
from harness.fuzz.space import Example
from harness.judge.diagnosis import diagnose
from harness.run.adapters import REFERENCE
from harness.run.runner import ScenarioResult, framework_of, run_scenario

OK, ILL_CONDITIONED, NOT_RUNNABLE, FINDING = "ok", "ill-conditioned", "not runnable", "finding"


@dataclass(frozen=True)
class Outcome:
    kind: str  # OK, ILL_CONDITIONED, NOT_RUNNABLE or FINDING
    fingerprints: frozenset[Fingerprint] = frozenset()
    reason: str = ""  # why ill-conditioned or not runnable


def ill_conditioned(result: ScenarioResult) -> dict[str, str]:
    """dtype -> why the scenario is ill-conditioned by nature in it: the reference's own run leaves
    the finite numbers."""
    out = {}
    for (label, dtype), run in result.runs.items():
        if framework_of(label) == REFERENCE and run.ok and run.first_nonfinite_step is not None:
            out[dtype] = "the reference's loss or parameters leave the finite numbers"
    return out


def judge(example: Example, *, frameworks: tuple[str, ...], dtypes: tuple[str, ...]) -> Outcome:
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
        return Outcome(OK)
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
