"""Helpers for course staff's own pytest suites (``docs/python-api.md``).

::

    from harness.testing import assert_gradients_match, assert_parity

    def test_my_scenario_agrees():
        assert_parity("scenarios/my-scenario.toml", frameworks=("numpy", "torch"), dtypes=("float64",))

    def test_my_backprop():
        assert_gradients_match(my_backward, "scenarios/keys/audits/xor-relu-sigmoid.toml")

``comparisons_frame(result)`` (a run's comparisons) and ``audit_frame(...)`` (an audit of a
class) give the numbers as pandas DataFrames.

The failure texts here are the harness's own (``Comparison.describe_failure`` plus the
divergence diagnosis); the pytest plugin (``harness.pytest_plugin``) reports the same text.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from harness.answers.audit import (
    ATOL,
    RTOL,
    AuditResult,
    Backward,
    audit_gradients,
    audit_text,
    load_submission_adapter,
)
from harness.answers.batch import audit_batch, collect
from harness.answers.exports import audit_frame as exported_frame
from harness.answers.kinds import AUDIT_KINDS
from harness.answers.sandbox import TIMEOUT
from harness.errors import BadInput, escape_controls
from harness.judge.compare import Comparison
from harness.judge.diagnosis import Diagnosis
from harness.judge.lab_values import LabCheck
from harness.judge.result import ScenarioResult
from harness.pipeline import diagnose, run_scenario
from harness.render.frames import comparisons_frame as comparisons_frame  # re-exported: docs/python-api.md
from harness.run.adapters import FRAMEWORKS
from harness.run.trajectory import CRASHED, SKIPPED
from harness.spec.catalogue import resolve
from harness.spec.fields import Table
from harness.spec.scenario import DTYPES, Scenario, tolerance_term
from harness.spec.tolerance import Tolerance


def scenario_of(scenario: Scenario | str | Path) -> Scenario:
    """A Scenario as given, or the one a catalogue name or a single-scenario file names."""
    return scenario if isinstance(scenario, Scenario) else resolve(str(scenario))


def checked_tolerance(name: str, *, rtol: float | None, atol: float | None) -> tuple[float | None, float | None]:
    """``rtol`` and ``atol`` as given (None: the scenario's), each a finite number >= 0 by the rule of a
    scenario file's ``[tolerance]`` (``BadInput`` naming it otherwise: a nan tolerance passes anything)."""
    given = {key: value for key, value in (("rtol", rtol), ("atol", atol)) if value is not None}
    table = Table(given, file=f"{name}: harness.testing")
    return tolerance_term(table, "rtol", 0.0) if "rtol" in given else None, \
        tolerance_term(table, "atol", 0.0) if "atol" in given else None


def with_tolerance(scenario: Scenario, *, rtol: float | None = None, atol: float | None = None) -> Scenario:
    """The scenario with ``rtol`` / ``atol`` (where given) replacing its tolerance in every dtype; each
    is a finite number >= 0, as in a scenario file (``BadInput`` otherwise: nan would pass anything)."""
    rtol, atol = checked_tolerance(scenario.name, rtol=rtol, atol=atol)
    if rtol is None and atol is None:
        return scenario
    return replace(scenario, tolerances={
        dtype: Tolerance(rtol=tol.rtol if rtol is None else rtol, atol=tol.atol if atol is None else atol,
                         ulps=tol.ulps, eps=tol.eps)
        for dtype, tol in scenario.tolerances.items()})


def run_problem(result: ScenarioResult, label: str, dtype: str) -> tuple[str, str] | None:
    """``(status, text)`` when the run of ``label`` in ``dtype`` did not complete (crashed or
    skipped, with its message), None when it ran (or was not asked for)."""
    run = result.runs.get((label, dtype))
    if run is None or run.ok:
        return None
    return run.status, escape_controls(f"{result.scenario.name}: {label} ({dtype}) {run.status}: {run.message}")


def diagnoses(result: ScenarioResult) -> list[Diagnosis]:
    """The diagnosis of every pair that fails (``not Comparison.ok``); control runs included, so
    call it only when something failed."""
    failing = [c for c in result.comparisons if not c.ok]
    return diagnose(replace(result, comparisons=failing)) if failing else []


def diagnosis_line(found: list[Diagnosis], c: Comparison) -> str:
    """``diagnosis: <localisation>; cause: <cause>`` for ``c``, or "" when none was made."""
    for d in found:
        if d.comparison is c:
            return f"diagnosis: {d.localisation.describe()}; cause: {d.cause_name}"
    return ""


def failure_text(result: ScenarioResult, c: Comparison, found: list[Diagnosis] | None = None) -> str:
    """``Comparison.describe_failure`` and, on the next line, the diagnosis (computed here
    unless ``found`` is given)."""
    text = c.describe_failure(result.scenario.name)
    if c.expected_difference:
        text += f" [verdict: {c.verdict}]"
    line = diagnosis_line(diagnoses(result) if found is None else found, c)
    return f"{text}\n{line}" if line else text


def lab_check_text(scenario: str, check: LabCheck) -> str:
    """One line: a printed lab value the reference does not reproduce."""
    if check.step is None or check.computed is None:
        return f"{scenario}: lab value {check.label}: the run never reached step {check.lab.step}"
    expected = np.array2string(np.asarray(check.lab.value), precision=10, separator=", ")
    computed = np.array2string(np.asarray(check.computed), precision=10, separator=", ")
    return escape_controls(f"{scenario}: lab value {check.label}: printed {expected}, reference computed {computed}; "
                    f"max |diff| {check.max_abs_diff:.3e} beyond the tolerance ({check.tolerance_text})")


def parity_failures(result: ScenarioResult, *, lab_values: bool = True) -> list[str]:
    """Every reason ``result`` fails: crashed runs, pairs that are not ``ok`` (with their
    diagnosis) and, with ``lab_values``, printed lab values not reproduced. Empty: it passes."""
    out = []
    for (label, dtype) in result.runs:
        problem = run_problem(result, label, dtype)
        if problem is not None and problem[0] == CRASHED:
            out.append(problem[1])
    failing = [c for c in result.comparisons if not c.ok]
    if failing:
        found = diagnoses(result)
        out += [failure_text(result, c, found) for c in failing]
    if lab_values:
        out += [lab_check_text(result.scenario.name, check) for check in result.lab_checks if not check.ok]
    return out


def assert_parity(scenario: Scenario | str | Path, *, frameworks: tuple[str, ...] = FRAMEWORKS,
                  dtypes: tuple[str, ...] = DTYPES, rtol: float | None = None, atol: float | None = None,
                  lab_values: bool = True) -> ScenarioResult:
    """Run ``scenario`` (a Scenario, a catalogue name or a file path) in ``frameworks`` and
    ``dtypes`` and fail (``AssertionError`` with the harness's failure text) unless every compared
    pair is ``ok`` (agrees, or differs only by an explained optimizer convention), no run crashed
    and (``lab_values``) the reference reproduces the lab's printed values.

    ``rtol`` / ``atol`` replace the scenario's tolerance in every dtype. A framework that is not
    installed is skipped; if that leaves nothing to compare, it fails and says why.
    """
    __tracebackhide__ = True
    resolved = with_tolerance(scenario_of(scenario), rtol=rtol, atol=atol)
    result = run_scenario(resolved, frameworks=tuple(frameworks), dtypes=tuple(dtypes))
    failures = parity_failures(result, lab_values=lab_values)
    if failures:
        raise AssertionError("\n".join(failures))
    if not result.comparisons:
        skipped = [problem[1] for (label, dtype) in result.runs
                   if (problem := run_problem(result, label, dtype)) is not None and problem[0] == SKIPPED]
        raise AssertionError("; ".join([f"{resolved.name}: nothing was compared (frameworks={tuple(frameworks)!r}, "
                                        f"dtypes={tuple(dtypes)!r}: parity needs two implementations that ran)",
                                        *skipped]))
    return result


def audit_frame(submissions: list[str | Path], *, function: str, scenario: Scenario | str,
                kind: str = "backward", jobs: int = 1, timeout: float = TIMEOUT,
                adapter: str | Path | None = None) -> pd.DataFrame:
    """``nn-parity audit`` from Python: the submissions (files, folders or glob patterns) audited as
    ``kind`` (``harness.answers.kinds``), as a DataFrame with one row per submission and scored
    quantity (``harness.answers.exports.audit_frame`` says which columns). Bad input (no such
    file, a scenario the kind cannot audit) raises ``BadInput``; a submission that crashes is rows
    whose ``verdict`` is ``crashed``."""
    resolved = resolve(scenario) if isinstance(scenario, str) else scenario
    if kind not in AUDIT_KINDS:
        raise BadInput("kind", "", f"one of {', '.join(AUDIT_KINDS)}", kind)
    paths = collect([str(s) for s in submissions])
    results = audit_batch(paths, function, resolved, jobs=jobs, timeout=timeout, kind=kind,
                          submission_adapter=load_submission_adapter(adapter) if adapter is not None else None)
    return exported_frame(results)


def assert_gradients_match(fn: Backward, scenario: Scenario | str, *, rtol: float = RTOL,
                           atol: float = ATOL) -> AuditResult:
    """Fail (``AssertionError`` with the audit table) unless ``fn`` returns the gradient of every parameter.

    ``fn(params, X, y)`` gets the scenario's initial parameters (reference layout) and its
    first batch; see ``harness.answers.audit`` for the comparison and the tolerance (a finite number
    >= 0 each: ``checked_tolerance``).
    """
    resolved = resolve(scenario) if isinstance(scenario, str) else scenario
    checked_tolerance(resolved.name, rtol=rtol, atol=atol)
    result = audit_gradients(fn, resolved, function_name=getattr(fn, "__name__", "backward"), rtol=rtol, atol=atol)
    if not result.ok:
        raise AssertionError(audit_text(result, rtol=rtol, atol=atol))
    return result
