"""What every ``--kind`` audit shares (``harness.answers.kinds``): the calls, the judging of what a
submission returned into an ``AuditResult``, and the readers of returned values."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from harness.answers.audit import ATOL, RTOL, AuditResult, ParamAudit
from harness.answers.labels import labels_of
from harness.answers.returned import read_returned
from harness.answers.sandbox import Argument, Called
from harness.answers.value_transfer import Opaque, type_name
from harness.errors import escape_controls
from harness.judge.compare import Comparison
from harness.run.plan import make_plan
from harness.spec.scenario import Scenario
from harness.spec.tolerance import Tolerance, compare_elements

SUBMISSION = "submission"  # the submission's label beside the implementations'


@dataclass
class Outcome:
    """What one kind's judging found, before it becomes an ``AuditResult``."""
    quantities: list[ParamAudit]
    step: int | None = None  # the first step (train) or evaluation point that differs
    stage: str = ""
    suspect: str = ""
    cause: str = ""
    evidence: str = ""
    compared: str = ""
    right: list[str] = field(default_factory=list)  # what agrees before the first difference
    notes: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)


class KindAudit(ABC):
    """One kind's audit of one scenario: the calls every submission gets, what every implementation
    computes (``expect``: once for a whole batch), and the judging of what a submission returned."""

    kind = ""
    unit = "point"  # what ``Outcome.step`` counts

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.labels = labels_of(scenario)
        self.tolerance = Tolerance(rtol=RTOL, atol=ATOL)
        self.plan = make_plan(scenario, "float64")

    @abstractmethod
    def calls(self) -> list[list[Argument]]:
        ...

    def expect(self) -> None:
        """Compute what every implementation computes on the calls (the frameworks load here)."""

    @abstractmethod
    def judge(self, function: str, called: Called) -> AuditResult:
        """What a submission's calls returned, judged (``OutcomeAudit``: from its ``outcome``)."""
        ...

    @abstractmethod
    def quantity_names(self) -> list[tuple[str, str]]:
        """(name, label) of every quantity scored, one point each."""
        ...

    def crashed(self, function: str, reason: str, *, file: str = "", notes: list[str] | None = None) -> AuditResult:
        params = [ParamAudit(name=name, label=label, status="crashed", message=reason)
                  for name, label in self.quantity_names()]
        return AuditResult(scenario=self.scenario.name, function=function, params=params, source_spread={},
                           crash=reason, file=file, notes=notes or [], kind=self.kind, unit=self.unit)


class OutcomeAudit(KindAudit):
    """A kind judged from one ``Outcome`` of the calls' return values (every kind but ``backward``,
    whose gradient audit has its own judging)."""

    @abstractmethod
    def outcome(self, values: list[object]) -> Outcome:
        """What the calls' return values say."""
        ...

    def judge(self, function: str, called: Called) -> AuditResult:
        if called.error:
            return self.crashed(function, escape_controls(called.error),
                                notes=[escape_controls(n) for n in called.notes])
        try:
            outcome = self.outcome(called.values)
        except Unreadable as exc:
            return self.crashed(function, escape_controls(str(exc)), notes=[escape_controls(n) for n in called.notes])
        notes = [*map(escape_controls, called.notes), *outcome.notes]
        return AuditResult(scenario=self.scenario.name, function=function, params=outcome.quantities,
                           source_spread={}, diagnosis=outcome.cause, notes=notes,
                           kind=self.kind, step=outcome.step, unit=self.unit, stage=outcome.stage,
                           suspect=outcome.suspect, evidence=outcome.evidence, compared=outcome.compared,
                           right=outcome.right,
                           comparisons=[c.as_dict() for c in outcome.comparisons])


class Unreadable(Exception):
    """What the function returned is not what its kind returns (the row's crash reason)."""


# --- reading returned values ---------------------------------------------------------------


def as_number(value: object, what: str) -> float:
    array = as_array(value, what)
    if array.size != 1:
        raise Unreadable(f"{what} has {array.size} values, expected one number")
    return float(array.reshape(()))


def as_array(value: object, what: str) -> np.ndarray:
    if isinstance(value, Opaque):
        raise Unreadable(f"{what} is a {value.type_name}, not numbers ({value.reason})")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise Unreadable(f"{what} is a {type_name(value)}, not numbers ({escape_controls(str(exc))})") from None


def as_params(value: object, labels: dict[str, str], what: str) -> dict[str, np.ndarray]:
    returned = read_returned(value, labels)
    if returned.error:
        raise Unreadable(f"{what}: {returned.error.removeprefix('the function returned ')}")
    return dict(returned.arrays)


Shaped = np.ndarray | str | None  # a value in its expected shape, why it cannot be, or nothing returned


def shaped(value: np.ndarray | None, expected: np.ndarray) -> Shaped:
    """``value`` in ``expected``'s shape (axes of length 1 may differ), or why it cannot be."""
    if value is None:
        return None
    if np.squeeze(value).shape != np.squeeze(expected).shape:
        return f"shape {value.shape}, expected {expected.shape}"
    return value.reshape(expected.shape)


def differs(a: object, b: object, tol: Tolerance) -> bool:
    return bool(compare_elements(np.atleast_1d(np.asarray(a, dtype=np.float64)),
                                 np.atleast_1d(np.asarray(b, dtype=np.float64)), tol).bad.any())


def names_of(labels: list[str]) -> str:
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"
