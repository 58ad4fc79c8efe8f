"""A finding's fingerprint: what the harness says of it, abstracted from the scenario's sizes, so
that a smaller scenario with the same fault has the same fingerprint.

``(suspect, stage, quantity kind, dtype, cause)``: the suspect (an implementation, or
``no-majority``), the stage within the step where the difference first shows (``gradient
kernel``: layer indices dropped, the shrunk scenario may have fewer layers), the kind of quantity
that first broke the tolerance (``loss``, ``kernel``, ``bias``, ``steps``), the dtype, and the
confirmed cause or ``unknown``. A crashed run is ``(label, crash, <exception type>, dtype,
unknown)``; a fault of the shared plan or of a run's dtype is ``(harness|label, fault, <kind>,
dtype, unknown)``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from harness.judge.compare import DISAGREE
from harness.judge.diagnosis import Diagnosis
from harness.judge.result import ScenarioResult
from harness.run.labels import framework_of

UNKNOWN = "unknown"
NO_MAJORITY = "no-majority"
SLUG_MAX = 72


@dataclass(frozen=True, order=True)
class Fingerprint:
    suspect: str
    stage: str
    quantity: str
    dtype: str
    cause: str

    def text(self) -> str:
        return " / ".join((self.suspect, self.stage, self.quantity, self.dtype, self.cause))

    def slug(self) -> str:
        """A file name stem: lowercase words joined by dashes, at most ``SLUG_MAX`` characters."""
        words = re.sub(r"[^a-z0-9]+", "-", "-".join((self.suspect, self.stage, self.quantity, self.dtype,
                                                       self.cause)).lower()).strip("-")
        return words[:SLUG_MAX].rstrip("-")


def kind(name: str) -> str:
    """``gradient layers.1.kernel`` -> ``gradient kernel``; ``output layers.0`` -> ``output``."""
    return re.sub(r"\s+", " ", re.sub(r"layers\.\d+\.?", "", name)).strip() or name


def of_diagnosis(d: Diagnosis) -> Fingerprint:
    suspect = NO_MAJORITY if d.suspect is None or d.suspect.label is None else framework_of(d.suspect.label)
    return Fingerprint(suspect=suspect, stage=kind(d.stage or "none"), quantity=kind(d.quantity),
                       dtype=d.comparison.dtype, cause=d.cause.name if d.cause is not None else UNKNOWN)


def of_result(result: ScenarioResult, diagnoses: list[Diagnosis]) -> frozenset[Fingerprint]:
    """Every fingerprint of a result that is not ok: its crashed runs, its faults and its
    disagreeing pairs (a drift, or a pair that differs, explained, is none)."""
    out = {Fingerprint(framework_of(label), "crash", run.message.split(":", 1)[0] or "crash", dtype, UNKNOWN)
           for (label, dtype), run in result.runs.items() if run.status == "crashed"}
    out |= {of_diagnosis(d) for d in diagnoses if d.comparison.state == DISAGREE}
    out |= {Fingerprint(framework_of(label), "fault", "computed dtype", dtype, UNKNOWN)  # the run's own fault
            for label in result.frameworks for dtype in result.dtypes if result.dtype_fault(label, dtype)}
    if result.plan_faults:
        out.add(Fingerprint("harness", "fault", "plan", "-", UNKNOWN))
    return frozenset(out)
