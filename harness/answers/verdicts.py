"""One answer checked: the implementations first agree, then the key is judged.

Verdicts, in the order they are decided:

* ``malformed``: the answer could not be read (its one-line error is reported);
* ``harness-fault``: an implementation crashed or the implementations disagree (the
  tolerance of the answer's dtype: the scenario's, else ``DEFAULT_TOLERANCES["float64"]``);
  the key is not judged on a computation the harness cannot vouch for (a framework that
  cannot compute the answer's pinned optimizer convention is skipped, with a warning);
* ``unanswered``: no ``expected``; the computed value is reported, printed as numpy would;
* ``implausible``: the expected value is impossible for the quantity (``plausibility``; a
  printed nan is not: it is judged below, like a scenario's lab value);
* ``not-reproducible``: the key says the printed value cannot be reproduced
  (``reproducible = false``, e.g. an unseeded shuffle); the difference is reported, not judged;
* ``correct`` / ``wrong``: per element ``|computed - expected| <= tolerance`` with::

      tolerance = printed + arithmetic + propagated
      printed    = half a unit in the last printed digit (or atol + rtol*|expected| if the key sets them)
      arithmetic = atol + rtol*|expected| of the float64 implementations (1e-14 + 1e-12*|e|;
                   float32's 1e-7 + 1e-5*|e| when the key printed dtype=float32 or a scenario
                   answer is computed in dtype = "float32")
      propagated = sum_j |d answer / d input_j| * half-unit_j (``inputs_rounded_to``: central
                   differences of the reference, ``harness.judge.propagation``)

  The difference and the agreement between implementations are ``harness.spec.tolerance``'s
  (nan == nan, the same inf; nan against a number infinitely far); ``|expected|`` in an
  allowance is its finite magnitude (an infinite expected value allows nothing extra).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from harness.answers.compute import Values, compute_all, reference_values
from harness.answers.key_file import Answer, Malformed
from harness.answers.overflow import OrderDependent, order_dependence
from harness.answers.plausibility import degenerate, implausible
from harness.answers.questions import (
    NetworkQuestion,
    Question,
    ScenarioQuestion,
    answer_dtype,
    entry_names,
    input_names,
    input_values,
    integer_answer,
    with_inputs,
)
from harness.judge.propagation import propagated
from harness.run.adapters import FRAMEWORKS, REFERENCE, adapter
from harness.spec.printed import Printed, format_like, half_unit
from harness.spec.tolerance import (
    DEFAULT_TOLERANCES,
    Tolerance,
    compare_elements,
    difference,
    finite_magnitude,
)

CORRECT, WRONG, UNANSWERED, IMPLAUSIBLE = "correct", "wrong", "unanswered", "implausible"
HARNESS_FAULT, NOT_REPRODUCIBLE, MALFORMED = "harness-fault", "not-reproducible", "malformed"
FAILING = (WRONG, UNANSWERED, IMPLAUSIBLE, HARNESS_FAULT)
NUMPY_PRECISION = 8  # numpy's default print precision


def numpy_text(values: np.ndarray, *, dtype: str = "float64", integers: bool = False,
               precision: int = NUMPY_PRECISION) -> str:
    """What ``print(value)`` shows when numpy holds the value as ``dtype`` (or as integers: ``[[3]\n [3]]``,
    not ``[[3.]\n [3.]]``) at print precision ``precision`` (floatmode maxprec: trailing zeros trimmed).
    A 0-d value prints as numpy prints a scalar, in full (``0.31999999999999995``, float32 ``0.0103``)."""
    v = np.asarray(values, dtype=np.float64)
    if integers and bool(np.all(np.isfinite(v))) and bool(np.all(v == np.round(v))) and bool(
            np.all(np.abs(v) < 2.0 ** 63)):  # beyond int64, shown as the float it is
        return str(int(v)) if v.ndim == 0 else str(v.astype(np.int64))
    held = v.astype(np.float32) if dtype == "float32" else v
    if held.ndim == 0:
        return str(held[()]) if dtype == "float32" else repr(float(held))
    with np.printoptions(precision=precision, floatmode="maxprec", suppress=False):
        return str(held)


@dataclass(frozen=True)
class Element:
    """One element of a part as judged: where, both values, their difference and its own allowance."""

    index: tuple[int, ...]
    computed: float
    expected: float
    diff: float
    allowed: float
    printed: float  # the printed half-unit (or the key's atol + rtol*|e|) in ``allowed``

    @property
    def where(self) -> str:
        """``[1, 0]``, or '' for a scalar."""
        return f"[{', '.join(str(i) for i in self.index)}]" if self.index else ""


@dataclass
class PartCheck:
    part: str
    computed: np.ndarray
    expected: Printed | None = None
    printed_tol: np.ndarray | None = None
    arithmetic_tol: np.ndarray | None = None
    propagated_tol: np.ndarray | None = None
    rule: str = ""
    dtype: str = "float64"  # what the answer was computed in, and how an unanswered one is printed
    integers: bool = False  # numpy holds the answer as integers (questions.integer_answer)
    precision: int = NUMPY_PRECISION  # the print precision of an unanswered one
    order_dependent: OrderDependent | None = None  # an intermediate overflow (harness.answers.overflow)
    entry_names: tuple[str, ...] = ()  # what each element is called (a history's epochs), when an index is not enough

    @property
    def diff(self) -> np.ndarray | None:
        """Per element, |computed - expected|; where the value depends on the summation order, the
        difference from the expected value to the nearest order's outcome."""
        if self.expected is None:
            return None
        diff = difference(self.computed.reshape(self.expected.values.shape), self.expected.values)
        if self.order_dependent is not None:
            nearest = self.order_dependent.nearest(self.expected.values).reshape(diff.shape)
            diff = np.where(self.order_dependent.mask.reshape(diff.shape), nearest, diff)
        return diff

    @property
    def tolerance(self) -> np.ndarray | None:
        if self.expected is None or self.printed_tol is None or self.arithmetic_tol is None:
            return None
        total = self.printed_tol + self.arithmetic_tol
        return total if self.propagated_tol is None else total + self.propagated_tol.reshape(total.shape)

    @property
    def ok(self) -> bool:
        tolerance = self.tolerance
        diff = self.diff
        if diff is None or tolerance is None:
            return False
        return not bool(np.any(diff > tolerance))

    @property
    def max_abs_diff(self) -> float | None:
        diff = self.diff
        return None if diff is None else float(np.max(diff, initial=0.0))

    def beyond(self) -> int:
        """How many elements are beyond their own allowance."""
        diff, tolerance = self.diff, self.tolerance
        return 0 if diff is None or tolerance is None else int(np.count_nonzero(diff > tolerance))

    def worst(self) -> Element | None:
        """The element farthest beyond (or closest to) its own allowance: the largest difference / allowance."""
        diff, tolerance = self.diff, self.tolerance
        if diff is None or tolerance is None or self.expected is None or self.printed_tol is None or diff.size == 0:
            return None
        allowed = np.broadcast_to(tolerance, diff.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            used = np.where(diff == 0, 0.0, diff / np.where(allowed == 0, np.inf, allowed))
            used = np.where((diff > 0) & (allowed == 0), np.inf, used)
        flat = int(np.argmax(used)) if np.any(used > 0) else int(np.argmax(diff))
        index = tuple(int(i) for i in np.unravel_index(flat, diff.shape))
        computed = self.computed.reshape(diff.shape)
        printed = np.broadcast_to(self.printed_tol, diff.shape)
        return Element(index=index, computed=float(computed[index]), expected=float(self.expected.values[index]),
                       diff=float(diff[index]), allowed=float(allowed[index]), printed=float(printed[index]))

    def wrong_text(self) -> str:
        """The wrong element named: ``w[1, 0] = 0.9975273768433653 computed, 0.99752748 printed: differs by 1.03e-07,
        beyond its allowance 5.00e-09 (1 of 2 elements wrong)``."""
        element = self.worst()
        if element is None:
            return ""
        name = (f"element {element.where}" if element.where else "value") if self.part == "value" \
            else self.part + element.where
        if self.entry_names:
            flat = int(np.ravel_multi_index(element.index, np.shape(self.computed))) if element.index else 0
            name = f"{self.part} at {self.entry_names[flat]} (entry {element.where})"
        total = int(np.size(self.computed))
        count = f" ({self.beyond()} of {total} elements wrong)" if total > 1 else ""
        return (f"{name} = {element.computed!r} computed, {element.expected!r} printed: differs by "
                f"{element.diff:.2e}, beyond its allowance {element.allowed:.2e}{count}")

    def computed_text(self) -> str:
        """The computed value printed the way the key printed this answer (numpy's style if unanswered)."""
        if self.expected is None:
            return numpy_text(self.computed, dtype=self.dtype, integers=self.integers, precision=self.precision)
        return format_like(self.computed.reshape(self.expected.values.shape), self.expected.style)


@dataclass
class AnswerResult:
    id: str
    kind: str
    verdict: str
    parts: list[PartCheck] = field(default_factory=list)
    by_framework: dict[str, Values | str] = field(default_factory=dict)
    spread: float = 0.0  # largest difference between two implementations
    agreement_tol: Tolerance | None = None
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    source: str = ""
    note: str = ""
    printed_precision: int | None = None  # the answer's (or [defaults]') printed_precision, if set
    dtype: str = "float64"  # what the implementations computed the answer in
    expected_from: dict[str, str] = field(default_factory=dict)  # part -> "lab.ipynb, cell 12"


def check_entry(entry: Answer | Malformed, *, frameworks: tuple[str, ...] = FRAMEWORKS) -> AnswerResult:
    if isinstance(entry, Malformed):
        return AnswerResult(id=entry.id, kind="-", verdict=MALFORMED, message=entry.error.one_line())
    q = entry.question
    result = AnswerResult(id=entry.id, kind=entry.kind, verdict=CORRECT, source=entry.source, note=entry.note,
                          warnings=[*degenerate(q), *entry.warnings],
                          printed_precision=entry.settings.printed_precision,
                          expected_from=dict(entry.expected_from))
    result.by_framework = compute_all(q, frameworks=frameworks)
    dtype = result.dtype = answer_dtype(q)
    tol = q.scenario.tolerances[dtype] if isinstance(q, ScenarioQuestion) else DEFAULT_TOLERANCES[dtype]
    result.agreement_tol = tol
    result.warnings += [f"{fw} {values}" for fw, values in result.by_framework.items()
                        if isinstance(values, str) and values.startswith("skipped")]
    result.warnings += _with_rules_off(q, result, tol)
    dependence = order_dependence(q)
    fault = _agreement(result, tol, dependence)
    reference = result.by_framework.get(REFERENCE)
    if fault or not isinstance(reference, dict):
        result.verdict, result.message = HARNESS_FAULT, fault or "the reference did not run"
        return result
    if dependence is not None:  # its order-dependent elements shown as the first outcome, whatever the kernel
        result.message = dependence.reason()
        reference = {"value": dependence.canonical(reference["value"])}
    if entry.expected is None:
        result.parts = [PartCheck(part=p, computed=v, dtype=dtype, integers=integer_answer(q),
                                  precision=entry.settings.printed_precision or NUMPY_PRECISION)
                        for p, v in reference.items()]
        result.verdict = UNANSWERED
        return result
    why = implausible(q, entry.expected)
    widening = _propagated(entry, reference, result)
    for part, value in reference.items():
        printed = entry.expected.get(part)
        if printed is None:
            result.parts.append(PartCheck(part=part, computed=value, dtype=dtype, integers=integer_answer(q)))
            continue
        result.parts.append(_part_check(entry, part, value, printed, widening.get(part), dependence))
    if why:
        result.verdict, result.message = IMPLAUSIBLE, why
    elif not entry.reproducible:
        result.verdict = NOT_REPRODUCIBLE
        result.message = entry.note or "the key marks this printed value as not reproducible"
    else:
        checked = [p for p in result.parts if p.expected is not None]
        result.verdict = CORRECT if all(p.ok for p in checked) else WRONG
        if result.verdict == WRONG:  # the wrong element first: the note column shows the message's start
            result.message = "; ".join([p.wrong_text() for p in checked if not p.ok]
                                       + ([result.message] if result.message else []))
        missing = [p.part for p in result.parts if p.expected is None]
        if missing:
            result.warnings.append(f"no expected value for {', '.join(missing)} (computed values reported)")
    if dtype == "float32":
        result.warnings.append(f"computed in float32 (the implementations agree within rtol {tol.rtol:g}, atol "
                               f"{tol.atol:g}): the arithmetic allowance is float32's (1e-7 + 1e-5*|e|)")
    elif any(p.expected is not None and p.expected.style.dtype == "float32" for p in result.parts):
        result.warnings.append("printed as float32: the arithmetic allowance is float32's (1e-7 + 1e-5*|e|)")
    return result


def _agreement(result: AnswerResult, tol: Tolerance, dependence: OrderDependent | None = None) -> str:
    """Why the implementations cannot be trusted on this answer ('' when they agree). Where the value
    depends on the summation order (``dependence``), each implementation must give one of the orders'
    outcomes, and the pairs are compared on the other elements."""
    ok = {fw: v for fw, v in result.by_framework.items() if not isinstance(v, str)}
    for fw, v in result.by_framework.items():
        if isinstance(v, str) and not v.startswith("skipped"):
            return f"{fw} {v}"
    if REFERENCE not in ok:
        return "the reference did not run"
    if dependence is not None:
        for fw, v in ok.items():
            value = np.asarray(v["value"], dtype=np.float64)
            allowed = tol.atol + tol.rtol * finite_magnitude(value)
            stray = dependence.mask & ~dependence.matches(value, allowed=allowed)
            if np.any(stray):
                where = tuple(int(i) for i in np.argwhere(stray)[0])
                given = float(value.reshape(stray.shape)[where])
                return f"{fw} gives {given!r} at {list(where)}, which no summation order gives ({dependence.reason()})"
        ok = {fw: {"value": np.where(dependence.mask, 0.0, np.asarray(v["value"], dtype=np.float64).reshape(
            dependence.mask.shape))} for fw, v in ok.items()}
    for (a, va), (b, vb) in itertools.combinations(ok.items(), 2):
        why, largest = _disagreement(a, va, b, vb, tol)
        result.spread = max(result.spread, largest)
        if why:
            return why
    return ""


def _disagreement(a: str, va: Values, b: str, vb: Values, tol: Tolerance) -> tuple[str, float]:
    """Why ``a``'s parts and ``b``'s disagree ('' when they agree), and their largest difference."""
    largest = 0.0
    for part in va:
        x, y = np.asarray(va[part]), np.asarray(vb[part])
        if x.shape != y.shape:
            return f"{a} and {b} give {part} different shapes {x.shape} and {y.shape}", largest
        elements = compare_elements(x, y, tol)
        largest = max(largest, float(np.max(elements.diff, initial=0.0)))
        if np.any(elements.bad):
            return (f"{a} and {b} disagree on {part} by {largest:.3e} (allowed rtol {tol.rtol:g}, atol {tol.atol:g})",
                    largest)
    return "", largest


def _with_rules_off(q: Question, result: AnswerResult, tol: Tolerance) -> list[str]:
    """A framework with a dtype rule (``Adapter.narrowing_rule``: Keras on JAX and torch narrow some
    64-bit results to 32 bits) whose float64 answer disagrees with the reference's is computed again
    with that rule off, its control, as the runner does for runs. When the control agrees, it stands
    in for the framework in the cross-check, and a warning says so; otherwise the disagreement stays
    (a harness fault). Returns the warnings."""
    reference = result.by_framework.get(REFERENCE)
    if result.dtype != "float64" or not isinstance(reference, dict):
        return []
    notes = []
    for fw, values in list(result.by_framework.items()):
        rule = adapter(fw).narrowing_rule
        if rule is None or isinstance(values, str) or not _disagreement(fw, values, REFERENCE, reference, tol)[0]:
            continue
        control = compute_all(q, frameworks=(fw,), keep_64_bit=True)[fw]
        if isinstance(control, dict) and not _disagreement(fw, control, REFERENCE, reference, tol)[0]:
            gap = max(float(np.max(difference(values[p], reference[p]), initial=0.0)) for p in reference)
            result.by_framework[fw] = control
            notes.append(f"{fw} differs from the reference by {gap:.2g}: {rule}; with that rule off it agrees, "
                         "and is cross-checked so")
    return notes


def _propagated(entry: Answer, reference: Values, result: AnswerResult) -> Values:
    """part -> the half-width propagated from the inputs ``inputs_rounded_to`` declares rounded:
    ``propagated`` over the reference's value of the answer (``reference``) computed from
    perturbed inputs."""
    rounded = entry.settings.inputs_rounded_to
    if rounded is None:
        return {}
    question = entry.question
    if isinstance(question, ScenarioQuestion):
        result.warnings.append("no propagated tolerance: a scenario answer's inputs are the scenario's own, "
                               "not rounded key inputs")
        return {}
    if isinstance(question, NetworkQuestion) and question.output != "output":  # piecewise constant: nothing propagates
        return {part: np.zeros(np.shape(value)) for part, value in reference.items()}
    decimals = {name: rounded for name in input_names(question)} if isinstance(rounded, int) else dict(rounded)

    def flat_answer(inputs: dict[str, np.ndarray]) -> np.ndarray:  # every part, one flat array
        values = reference_values(with_inputs(question, inputs))
        return np.concatenate([np.ravel(values[part]) for part in reference])

    try:
        total = propagated(flat_answer, input_values(question), decimals)
    except ValueError as exc:
        result.warnings.append(f"no propagated tolerance: {exc}")
        return {}
    out, start = {}, 0
    for part, value in reference.items():
        size = int(np.size(value))
        out[part] = total[start:start + size].reshape(np.shape(value))
        start += size
    return out


def _part_check(entry: Answer, part: str, value: np.ndarray, printed: Printed,
                widening: np.ndarray | None, dependence: OrderDependent | None = None) -> PartCheck:
    s = entry.settings
    e = finite_magnitude(printed.values)  # an infinite expected value widens no allowance
    if s.rtol is not None or s.atol is not None:
        rtol, atol = s.rtol or 0.0, s.atol or 0.0
        printed_tol = atol + rtol * e
        rule = f"key: atol {atol:g} + rtol {rtol:g}*|e|"
    else:
        printed_tol = printed.half_unit
        st = printed.style
        rule = {"integer": "integers: exact",
                "fixed": f"{st.decimals} decimals printed: ±{float(half_unit(0.0, decimals=st.decimals)):.0e}",
                "scientific": f"{st.decimals + 1} significant digits printed: ±half a unit in the last"}[st.notation]
    computed_in = answer_dtype(entry.question)
    arith = DEFAULT_TOLERANCES["float32" if "float32" in (printed.style.dtype, computed_in) else "float64"]
    rule += f"; arithmetic atol {arith.atol:g} + rtol {arith.rtol:g}*|e|"
    if widening is not None:
        rule += f"; inputs rounded: +{float(np.max(widening)):.2e} propagated"
    return PartCheck(part=part, computed=np.asarray(value, dtype=np.float64), expected=printed,
                     printed_tol=printed_tol, arithmetic_tol=arith.atol + arith.rtol * e,
                     propagated_tol=widening, rule=rule, dtype=computed_in, integers=integer_answer(entry.question),
                     order_dependent=dependence, entry_names=entry_names(entry.question))
