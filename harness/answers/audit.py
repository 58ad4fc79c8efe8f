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
The submitted gradient passes the project's one agreement rule (``harness.judge.tolerance``),
``|g - reference| <= atol + rtol * max(|g|, |reference|)``,
``rtol = 1e-7``, ``atol = 1e-9``: a correct formula in float64 differs from the reference
only by summation order (~1e-15 relative); a real mistake (a factor, a missing term) is
off by far more. A wrong gradient is then compared with ``c * gradient`` of every
standard loss (``c`` fitted by least squares): "0.5 x the gradient of mse" names the MSE
gradient used in place of the cross-entropy's.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from harness.errors import BadInput
from harness.judge.tolerance import Tolerance, compare_elements
from harness.run.adapters import FRAMEWORKS, REFERENCE, adapter
from harness.run.plan import make_plan
from harness.spec.scenario import Scenario
from reference.losses import LOSSES

RTOL, ATOL = 1e-7, 1e-9
FD_STEP = 1e-6
# source -> the implementation computing it: the reference, then every framework
_ADAPTER_OF = {"reference": REFERENCE, **{fw: fw for fw in FRAMEWORKS if fw != REFERENCE}}
SOURCES = (*_ADAPTER_OF, "finite differences")

Backward = Callable[[dict[str, np.ndarray], np.ndarray, np.ndarray], object]


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

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.params)


def load_function(path: str | Path, name: str) -> Backward:
    path = Path(path)
    if not path.is_file():
        raise BadInput(path, "", "an existing Python file", str(path))
    spec = importlib.util.spec_from_file_location(f"audited_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise BadInput(path, "", "a Python source file", str(path))
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the file is user input: its errors are bad input, not a traceback
        raise BadInput(path, "", "a Python file that imports cleanly", f"{type(exc).__name__}: {exc}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise BadInput(path, "--function", f"the name of a function defined in {path.name}", name)
    return fn


def labels_of(scenario: Scenario) -> dict[str, str]:
    """Reference name -> the labs' label (``w``/``b`` for one layer, ``w1``/``b1``... otherwise)."""
    n = len(scenario.layers)
    out = {}
    for name in scenario.param_names():
        i = int(name.split(".")[1])
        suffix = "" if n == 1 else str(i + 1)
        out[name] = ("w" if name.endswith("kernel") else "b") + suffix
    return out


def first_batch(scenario: Scenario) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict[str, dict]]:
    """Initial parameters, the first batch, and each implementation's gradients on it."""
    plan = make_plan(scenario, "float64")
    idx = plan.batch_indices(0)
    X, y = plan.X[idx], plan.y[idx]
    params = {k: v.copy() for k, v in plan.initial_params.items()}
    grads: dict[str, dict] = {}
    for source, framework in _ADAPTER_OF.items():
        implementation = adapter(framework)
        reason = implementation.available()
        if reason is not None:
            raise RuntimeError(f"{framework} could not compute the reference gradient: {reason}")
        grads[source] = implementation.gradients(scenario, params, X, y)[1]
    grads["finite differences"] = finite_differences(scenario, params, X, y)
    return params, X, y, grads


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


def _submitted(fn: Backward, params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray,
               scenario: Scenario) -> tuple[dict[str, object], str]:
    """name -> what the function returned for it, or the error that stopped it."""
    try:
        returned = fn({k: v.copy() for k, v in params.items()}, X.copy(), y.copy())
    except Exception as exc:
        return {}, f"the function raised {type(exc).__name__}: {exc}"
    names, labels = scenario.param_names(), labels_of(scenario)
    if isinstance(returned, dict):
        by_label = {label: name for name, label in labels.items()}
        return {by_label.get(str(k), str(k)): v for k, v in returned.items()}, ""
    if isinstance(returned, (tuple, list)):
        if len(returned) != len(names):
            return {}, f"the function returned {len(returned)} values for {len(names)} parameters {names}"
        return dict(zip(names, returned)), ""
    return {}, f"the function returned a {type(returned).__name__}, not a dict or tuple of gradients"


def audit_gradients(fn: Backward, scenario: Scenario, *, function_name: str = "backward",
                    rtol: float = RTOL, atol: float = ATOL) -> AuditResult:
    params, X, y, grads = first_batch(scenario)
    reference = grads["reference"]
    spread = {s: max(float(np.max(np.abs(grads[s][n] - reference[n]))) for n in reference) for s in SOURCES}
    submitted, error = _submitted(fn, params, X, y, scenario)
    labels = labels_of(scenario)
    audits = []
    for name in scenario.param_names():
        audits.append(_audit_param(name, labels[name], submitted, error, reference[name], grads, rtol, atol))
    result = AuditResult(scenario=scenario.name, function=function_name, params=audits, source_spread=spread)
    if not result.ok:
        result.diagnosis = diagnose(scenario, params, X, y, {p.name: p.submitted for p in audits
                                                           if p.submitted is not None}, rtol=rtol, atol=atol)
    return result


def _audit_param(name: str, label: str, submitted: dict[str, object], error: str, reference: np.ndarray,
                 grads: dict[str, dict[str, np.ndarray]], rtol: float, atol: float) -> ParamAudit:
    audit = ParamAudit(name=name, label=label, status="ok", reference=reference)
    if error:
        audit.status, audit.message = "crashed", error
        return audit
    if name not in submitted:
        audit.status, audit.message = "missing", f"no gradient returned for {name} (or {label})"
        return audit
    try:
        value = np.asarray(submitted[name], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        audit.status, audit.message = "wrong shape", f"not a numeric array ({exc})"
        return audit
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


def diagnose(scenario: Scenario, params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray,
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
    if result.diagnosis:
        lines.append(result.diagnosis)
    return "\n".join(lines)
