"""Gradient audit: a hand-written backward pass compared with four independent gradients.

The audited function is written the way a student (or an answer key) writes backprop::

    def backward(params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]

``params`` holds the scenario's initial parameters in the reference layout
(``layers.<i>.kernel`` of shape ``(n_in, n_out)``, ``layers.<i>.bias`` of shape
``(n_out,)``); ``(X, y)`` is the scenario's first batch. It returns the gradient of the
scenario's batch-mean loss for every parameter, keyed by the same names or by the labs'
labels (``w``/``b``, ``w1``/``b1``/...), or as a tuple in parameter order.

Each parameter is compared in float64 with the reference (``reference.network``), torch
autograd and TF ``GradientTape`` (each adapter's ``gradients``) and central finite differences
of the reference loss, ``(L(p + h) - L(p - h)) / 2h`` with ``h = 1e-6 * max(1, |p|)``.
The submitted gradient passes the project's one agreement rule (``harness.spec.tolerance``),
``|g - reference| <= atol + rtol * max(|g|, |reference|)``,
``rtol = 1e-7``, ``atol = 1e-9``: a correct formula in float64 differs from the reference
only by summation order (~1e-15 relative); a real mistake (a factor, a missing term) is
off by far more. A wrong gradient is then compared with ``c * gradient`` of every
standard loss (``c`` fitted by least squares): "0.5 x the gradient of mse" names the MSE
gradient used in place of the cross-entropy's.

A submitted *file* (``harness.answers.batch.audit_one``, ``nn-parity audit``) is executed in its
own process, confined by ``harness.answers.sandbox`` (timeout, memory cap, temporary working directory);
whatever way it ends without returning gradients, every parameter is ``crashed`` with the
reason. The file is a Python file, imported, or a Jupyter notebook, whose definitions are run
(``harness.answers.notebook.select_code``: which statements, and why the others are not).
A *submission adapter* (``--adapter``: the instructor's code, run after the submission in its
namespace) can wrap a student's class in the ``(params, X, y)`` interface. A *callable* of the caller's own test
suite (``audit_gradients``, ``harness.testing.assert_gradients_match``) is called in this
process. Everything else — the batch, the four gradients (``independent``: computed once for
any number of submissions, ``harness.answers.batch``), the judging (``judge_gradients``) — is shared.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from harness.answers.labels import labels_of
from harness.answers.notebook import read_notebook, select_code
from harness.answers.returned import Returned, crash_reason, read_returned
from harness.answers.sandbox import Cell, SubmissionAdapter
from harness.errors import BadInput, escape_controls
from harness.judge.diagnosis import NO_CAUSE
from harness.run.adapters import FRAMEWORKS, REFERENCE, adapter
from harness.run.adapters.keras_model import forward_plan
from harness.run.adapters.workers import inline_active
from harness.run.budget import check_budget
from harness.run.cache import current as current_cache
from harness.run.cache_key import key as cache_key
from harness.run.plan import make_plan
from harness.spec.fields import read_text
from harness.spec.scenario import Scenario
from harness.spec.tolerance import Tolerance, compare_elements
from reference.losses import LOSSES

RTOL, ATOL = 1e-7, 1e-9
FD_STEP = 1e-6
# source -> the implementation computing it: the reference, then every framework
_ADAPTER_OF = {"reference": REFERENCE, **{fw: fw for fw in FRAMEWORKS if fw != REFERENCE}}
SOURCES = (*_ADAPTER_OF, "finite differences")

Backward = Callable[[dict[str, np.ndarray], np.ndarray, np.ndarray], object]
# (params, X, y) -> what the audited function returned, however it was called
_Submit = Callable[[dict[str, np.ndarray], np.ndarray, np.ndarray], Returned]


@dataclass
class ParamAudit:
    name: str
    label: str
    status: str  # "ok", "wrong", "wrong shape", "missing", "not finite", "crashed"
    submitted: np.ndarray | None = None
    reference: np.ndarray | None = None
    diffs: dict[str, float] = field(default_factory=dict)  # source -> max |submitted - source|
    max_rel: float | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class AuditResult:
    scenario: str
    function: str
    params: list[ParamAudit]
    source_spread: dict[str, float]  # source -> max |source - reference| over every parameter
    diagnosis: str = ""
    crash: str = ""  # why the function returned no gradients (every parameter is then "crashed")
    file: str = ""  # the submission as generated files show it (relative, never absolute)
    skipped: list[str] = field(default_factory=list)  # a notebook's code not run, one line per cell
    notes: list[str] = field(default_factory=list)  # a notebook's imports that failed (the run went on)
    seconds: float = 0.0  # wall clock of the submission's process and the judging
    # --kind (harness.answers.kinds): what was audited, where the submission first differs (``step``
    # counts ``unit``s: steps of a loop, evaluation points otherwise; ``stage`` names the quantity
    # within it as harness.run.trajectory.trace_stages does), who the majority rule suspects, the
    # measurement that confirmed ``diagnosis``, what was compared, and each comparison as JSON
    kind: str = "backward"
    unit: str = "point"
    step: int | None = None
    stage: str = ""
    suspect: str = ""
    evidence: str = ""
    compared: str = ""
    right: list[str] = field(default_factory=list)  # what agrees before the first difference (``step``)
    comparisons: list[dict[str, object]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.params)

    @property
    def verdict(self) -> str:
        """``correct`` (every gradient agrees), ``crashed`` (no gradients returned) or ``wrong``."""
        return "correct" if self.ok else "crashed" if self.crash else "wrong"

    @property
    def mistake(self) -> str:
        """One line: why a submission is not correct (the named mistake, the crash, or what is wrong)."""
        if self.ok:
            return ""
        if self.crash:
            return self.crash
        if self.diagnosis:
            return self.diagnosis.removeprefix("the submitted gradients equal ")
        if self.step is not None:
            return f"differs from the reference from {self.unit} {self.step} at `{self.stage}`: {NO_CAUSE}"
        return "; ".join(f"{p.label}: {p.status}" + (f" ({p.message})" if p.message else "")
                         for p in self.params if not p.ok)


@dataclass
class Independent:
    """The first batch at the initial parameters and its gradient from every independent source."""
    params: dict[str, np.ndarray]
    X: np.ndarray
    y: np.ndarray
    grads: dict[str, dict[str, np.ndarray]]  # source -> parameter -> gradient
    spread: dict[str, float]  # source -> max |source - reference| over every parameter


@dataclass
class Submission:
    """A submitted file, ready to run: a Python file, or the code ``select_code`` chose from a notebook."""
    path: Path
    cells: list[Cell] | None = None  # a notebook's code; None: a Python file, imported
    skipped: list[str] = field(default_factory=list)  # a notebook's code not run, one line per cell


def load_submission(path: str | Path) -> Submission:
    """``path`` read as a submission: a ``.py`` file (a regular UTF-8 file) or a ``.ipynb`` notebook
    (``read_notebook``); anything else is ``BadInput`` naming the file."""
    path = Path(path)
    if path.suffix == ".ipynb":
        selection = select_code(read_notebook(path))
        return Submission(path, selection.cells, selection.skipped)
    if path.suffix != ".py":
        raise BadInput(path, "", "a Python file (.py) or a Jupyter notebook (.ipynb)", path.name)
    read_text(path, what="Python file")
    return Submission(path)


def load_submission_adapter(path: str | Path) -> SubmissionAdapter:
    """The instructor's adapter file: valid Python, run after each submission in its namespace."""
    path = Path(path)
    source = read_text(path, what="Python file (--adapter)")
    try:
        ast.parse(source, path.name)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        raise BadInput(path, "--adapter" + (f" line {line}" if line else ""), "valid Python",
                       getattr(exc, "msg", str(exc))) from None
    return SubmissionAdapter(name=path.name, source=source)


def initial_batch(scenario: Scenario) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The scenario's initial parameters (reference layout) and first batch, in float64; a scenario
    whose data and plan would not fit in memory is refused first (``check_budget``: BadInput)."""
    check_budget(scenario, runs_per_dtype=1, dtypes=("float64",))
    plan = make_plan(scenario, "float64")
    idx = plan.batch_indices(0)
    return {k: v.copy() for k, v in plan.initial_params.items()}, plan.X[idx], plan.y[idx]


def independent_gradients(scenario: Scenario, params: dict[str, np.ndarray], X: np.ndarray,
                          y: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """source -> each parameter's gradient on the batch: the reference, every framework, finite differences.
    A framework's gradient comes from the command's run cache when it holds one made from the same
    inputs, code and environment (``_framework_gradients``)."""
    grads: dict[str, dict[str, np.ndarray]] = {}
    for source, framework in _ADAPTER_OF.items():
        implementation = adapter(framework)
        reason = implementation.available()
        if reason is not None:
            raise RuntimeError(f"{framework} could not compute the reference gradient: {reason}")
        grads[source] = (implementation.gradients(scenario, params, X, y)[1] if framework == REFERENCE
                         else _framework_gradients(framework, scenario, params, X, y))
    grads["finite differences"] = finite_differences(scenario, params, X, y)
    return grads


def _framework_gradients(framework: str, scenario: Scenario, params: dict[str, np.ndarray], X: np.ndarray,
                         y: np.ndarray) -> dict[str, np.ndarray]:
    """``framework``'s gradient on the batch, through the command's run cache (``harness.run.cache``;
    ``nn-parity audit`` has one when ``$NN_PARITY_CACHE`` names it): keyed like a run, by the
    implementation, the method ``gradients`` and the one-batch plan of the parameters and the batch
    (the network, the loss and the arrays), the harness's code and the environment, so an entry made
    from anything else is never served. A framework start (Keras on TensorFlow: about 4 s of CPU)
    is then paid once for every audit of the same scenario, not once per command. Never under
    ``inline()``, where a framework class may be monkeypatched (as ``run_all``)."""
    cache = None if inline_active() else current_cache()
    if cache is None:
        return adapter(framework).gradients(scenario, params, X, y)[1]
    plan = forward_plan(scenario, params, X, y)
    k = cache_key(framework, "gradients", plan)
    found = cache.get(k)
    if (isinstance(found, dict) and set(found) == set(params)
            and all(isinstance(found[n], np.ndarray) and found[n].shape == params[n].shape for n in params)):
        return found
    grads = adapter(framework).gradients(scenario, params, X, y)[1]
    cache.put(k, grads, made=(framework, "gradients", plan, ()))
    return grads


def finite_differences(scenario: Scenario, params: dict[str, np.ndarray], X: np.ndarray,
                       y: np.ndarray) -> dict[str, np.ndarray]:
    """Central differences of the reference's batch-mean loss, element by element."""
    reference = adapter(REFERENCE)
    work = {k: v.copy() for k, v in params.items()}
    out = {}
    for name, p in work.items():
        g = np.zeros_like(p)
        for index in np.ndindex(p.shape):
            h = FD_STEP * max(1.0, abs(float(p[index])))
            saved = p[index]
            p[index] = saved + h
            up = reference.gradients(scenario, work, X, y)[0]
            p[index] = saved - h
            down = reference.gradients(scenario, work, X, y)[0]
            p[index] = saved
            g[index] = (up - down) / (2 * h)
        out[name] = g
    return out


def audit_gradients(fn: Backward, scenario: Scenario, *, function_name: str = "backward",
                    rtol: float = RTOL, atol: float = ATOL) -> AuditResult:
    """``fn`` called in this process: a callable of the caller's own, trusted code (``harness.testing``)."""
    labels = labels_of(scenario)

    def call(params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray) -> Returned:
        try:
            returned = fn({k: v.copy() for k, v in params.items()}, X.copy(), y.copy())
        except Exception as exc:
            return Returned(error=crash_reason(exc, "the function"))
        return read_returned(returned, labels)

    return _audit(scenario, function_name, call, rtol=rtol, atol=atol)


def no_such_function(submission: Submission, function: str) -> BadInput:
    """``--function`` names nothing callable in the submission: which cells of a notebook were not run."""
    name = submission.path.name
    if submission.cells is None:
        return BadInput(submission.path, "--function", f"the name of a function defined in {name}", function)
    not_run = [line.split(":", 1)[0] for line in submission.skipped if ": skipped" in line]
    hint = f" (not run: {', '.join(not_run[:4])}{', ...' if len(not_run) > 4 else ''})" if not_run else ""
    return BadInput(submission.path, "--function",
                    f"the name of a function defined by the code cells of {name}{hint}", function)


def check_trains(scenario: Scenario) -> None:
    """A forward-only scenario has no loss to differentiate: ``BadInput``."""
    if not scenario.trains:
        raise BadInput(scenario.path, "training", "a [training] table (the loss whose gradient is audited); "
                       "this scenario is forward-only")


def independent(scenario: Scenario, batch: tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]) -> Independent:
    """The gradient of every independent source on ``batch`` (``initial_batch``), and their spread."""
    params, X, y = batch
    grads = independent_gradients(scenario, params, X, y)
    reference = grads["reference"]
    spread = {s: max(float(np.max(np.abs(grads[s][n] - reference[n]))) for n in reference) for s in SOURCES}
    return Independent(params=params, X=X, y=y, grads=grads, spread=spread)


def _audit(scenario: Scenario, function_name: str, call: _Submit, *, rtol: float, atol: float) -> AuditResult:
    """The submitted gradients on the first batch judged against the independent ones, parameter by parameter."""
    check_trains(scenario)
    batch = initial_batch(scenario)
    returned = call(*batch)  # before the frameworks load: a missing function is reported at once
    return judge_gradients(scenario, function_name, returned, independent(scenario, batch), rtol=rtol, atol=atol)


def judge_gradients(scenario: Scenario, function_name: str, returned: Returned, expected: Independent, *,
                    rtol: float = RTOL, atol: float = ATOL) -> AuditResult:
    """What the submission returned against the independent gradients, parameter by parameter, and
    (when something is wrong) which standard loss's gradient it computed instead."""
    # the submission's words, shown on one line with control characters escaped: it cannot redraw the table
    returned = Returned(arrays=returned.arrays,
                        unreadable={k: escape_controls(v) for k, v in returned.unreadable.items()},
                        error=escape_controls(returned.error), notes=[escape_controls(n) for n in returned.notes])
    grads = expected.grads
    labels = labels_of(scenario)
    audits = [_audit_param(name, labels[name], returned, grads["reference"][name], grads, rtol, atol)
              for name in scenario.param_names()]
    result = AuditResult(scenario=scenario.name, function=function_name, params=audits,
                         source_spread=expected.spread, crash=returned.error, notes=returned.notes)
    if not result.ok:
        result.diagnosis = matching_loss_gradient(scenario, expected.params, expected.X, expected.y,
                                                  {p.name: p.submitted for p in audits if p.submitted is not None},
                                                  rtol=rtol, atol=atol)
    return result


def _audit_param(name: str, label: str, returned: Returned, reference: np.ndarray,
                 grads: dict[str, dict[str, np.ndarray]], rtol: float, atol: float) -> ParamAudit:
    audit = ParamAudit(name=name, label=label, status="ok", reference=reference)
    if returned.error:
        audit.status, audit.message = "crashed", returned.error
        return audit
    if name in returned.unreadable:
        audit.status, audit.message = "wrong shape", returned.unreadable[name]
        return audit
    if name not in returned.arrays:
        audit.status, audit.message = "missing", f"no gradient returned for {name} (or {label})"
        return audit
    value = returned.arrays[name]
    if np.squeeze(value).shape != np.squeeze(reference).shape:
        audit.status = "wrong shape"
        audit.message = f"shape {value.shape}, expected {reference.shape}"
        return audit
    if value.shape != reference.shape:  # only axes of length 1 differ, e.g. a number for a (1,) bias
        audit.message = f"shape {value.shape} read as {reference.shape}"
        value = value.reshape(reference.shape)
    audit.submitted = value
    if not np.all(np.isfinite(value)):
        audit.status = "not finite"
        return audit
    audit.diffs = {s: float(np.max(np.abs(value - grads[s][name]))) for s in SOURCES}
    scale = np.abs(reference)
    audit.max_rel = float(np.max(np.abs(value - reference) / np.where(scale > 0, scale, 1.0)))
    if compare_elements(value, reference, Tolerance(rtol=rtol, atol=atol)).bad.any():
        audit.status = "wrong"
    return audit


def matching_loss_gradient(scenario: Scenario, params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray,
                           submitted: dict[str, np.ndarray], *, rtol: float, atol: float) -> str:
    """Which standard loss's gradient (times a constant) the submitted gradients are, if any."""
    if not submitted:
        return ""
    training, findings = scenario.training_spec, []
    for loss in LOSSES:
        _, g = adapter(REFERENCE).gradients(replace(scenario, training=replace(training, loss=loss)), params, X, y)
        names = [n for n in submitted if n in g]
        if not names or not all(np.all(np.isfinite(g[n])) for n in names):
            continue
        s = np.concatenate([submitted[n].ravel() for n in names])
        r = np.concatenate([g[n].ravel() for n in names])
        if not np.any(r):
            continue
        c = float(s @ r / (r @ r))
        if abs(c) > 0 and not compare_elements(s, c * r, Tolerance(rtol=rtol, atol=atol)).bad.any():
            c_text = f"{c:.6g}"
            if loss == training.loss:
                findings.append(f"{c_text} x the correct gradient ({loss}): a scale error")
            else:
                findings.append(f"{c_text} x the gradient of {loss} (not of the scenario's {training.loss}): "
                                f"the backward pass differentiates {loss}")
    if findings:
        return "the submitted gradients equal " + "; ".join(findings)
    return ""


def audit_table(result: AuditResult) -> pd.DataFrame:
    rows = []
    for p in result.params:
        row = {"parameter": f"{p.name} ({p.label})", "status": p.status.upper() if not p.ok else "ok"}
        for s in SOURCES:
            row[f"vs {s}"] = f"{p.diffs[s]:.2e}" if s in p.diffs else "-"
        row["max rel"] = "-" if p.max_rel is None else f"{p.max_rel:.2e}"
        row["note"] = p.message
        rows.append(row)
    return pd.DataFrame(rows)


def audit_text(result: AuditResult, *, rtol: float = RTOL, atol: float = ATOL) -> str:
    lines = [f"Gradient audit of {result.function} on {result.scenario} (float64, first batch, initial parameters)",
             "", audit_table(result).to_markdown(index=False, disable_numparse=True), "",
             f"tolerance: |submitted - reference| <= {atol:g} + {rtol:g}*max(|submitted|, |reference|)",
             "implementations against the reference: " + ", ".join(
                 f"{s} {v:.1e}" for s, v in result.source_spread.items() if s != "reference")]
    wrong = [p for p in result.params if not p.ok]
    if wrong:
        lines.append("wrong: " + ", ".join(f"{p.name} ({p.status}"
                                           + (f", max abs {p.diffs['reference']:.3e}" if p.diffs else "") + ")"
                                           for p in wrong))
    if result.crash:
        lines.append(f"crashed: {result.crash}")
    if result.diagnosis:
        lines.append(result.diagnosis)
    if result.skipped or result.notes:
        lines += ["", f"not run from {result.file or 'the notebook'} (how cells are chosen: docs/audit.md):"]
        lines += [f"  {line}" for line in [*result.skipped, *result.notes]]
    return "\n".join(lines)
