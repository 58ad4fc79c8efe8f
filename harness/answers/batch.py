"""A whole class audited at once (``nn-parity audit SUBMISSIONS... --function NAME``), and the
files an audit writes: JSON, a gradebook CSV and Gradescope's ``results.json``.

``collect`` turns the command line's arguments into submissions: a file is one (whatever it
holds: a broken file is a row of its own), a folder gives the ``.py`` and ``.ipynb`` files
directly in it, a glob pattern (``subs/*.ipynb``, ``subs/**/*.py``) the ``.py`` and ``.ipynb``
files it matches; a missing file, an empty folder or a pattern matching nothing is
``BadInput``. ``audit_batch`` runs each submission in its own sandboxed process
(``harness.answers.sandbox``), ``jobs`` at a time, computes the independent gradients once,
and judges every submission against them. A submission that cannot be read, defines no such
function, crashes or hangs is a ``crashed`` row with the reason, never the end of the batch.
Rows are sorted by the submission's path as shown (relative to the working directory, else
to the submissions' common folder: never an absolute path), so any ``jobs`` gives the same
rows in the same order; only ``seconds`` differ.
"""
from __future__ import annotations

import csv
import io
import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm  # type: ignore[import-untyped]  # no stubs; pinned in constraints.txt

from harness.answers.audit import (
    ATOL,
    RTOL,
    SOURCES,
    AuditResult,
    ParamAudit,
    audit_text,
    load_submission,
    no_such_function,
)
from harness.answers.kinds import INTERFACES, kind_audit
from harness.answers.labels import labels_of
from harness.answers.sandbox import TIMEOUT, Called, NoSuchFunction, SubmissionAdapter, call_submission, stop_all
from harness.errors import BadInput
from harness.judge.diagnosis import NO_CAUSE
from harness.render.files import display_path
from harness.spec.scenario import Scenario

SUFFIXES = (".py", ".ipynb")
_PATTERN = ("*", "?", "[")


def is_batch(arguments: list[str]) -> bool:
    """Several arguments, or one folder or glob pattern: a batch (one file: a single audit)."""
    return len(arguments) > 1 or any(_is_pattern(a) or Path(a).is_dir() for a in arguments)


def collect(arguments: list[str]) -> list[Path]:
    """The submission files the arguments name (see the module), each once, in argument order."""
    found: dict[Path, Path] = {}
    for argument in arguments:
        if _is_pattern(argument):
            files = [m for m in _matches(argument) if _submission_file(m)]
            if not files:
                raise BadInput(argument, "", "a pattern matching .py or .ipynb files", "no match")
        elif Path(argument).is_dir():
            files = sorted(p for p in Path(argument).iterdir() if _submission_file(p))
            if not files:
                raise BadInput(argument, "", "a folder holding .py or .ipynb files", "none in it")
        elif os.path.lexists(argument):
            files = [Path(argument)]
        else:
            raise BadInput(argument, "", "an existing file, a folder or a glob pattern", "no such file")
        for path in files:
            found.setdefault(Path(os.path.realpath(path)), path)  # realpath: a symlink loop raises nothing
    return list(found.values())


def display_names(paths: list[Path]) -> dict[Path, str]:
    """Each path as generated files show it: relative to the working directory, else to the
    submissions' common folder (so ``alice/hw.ipynb`` and ``bob/hw.ipynb`` stay apart)."""
    cwd = Path.cwd().resolve()
    resolved = {path: Path(os.path.realpath(path.parent)) / path.name for path in paths}  # a symlink as named
    common = Path(os.path.commonpath([r.parent for r in resolved.values()])) if paths else cwd
    names = {}
    for path, full in resolved.items():
        try:
            names[path] = full.relative_to(cwd).as_posix()
        except ValueError:
            names[path] = full.relative_to(common).as_posix()
    return names


def audit_batch(paths: list[Path], function: str, scenario: Scenario, *, jobs: int, timeout: float = TIMEOUT,
                submission_adapter: SubmissionAdapter | None = None, progress: bool = False, rtol: float = RTOL,
                atol: float = ATOL, kind: str = "backward") -> list[AuditResult]:
    """Every submission audited as ``kind`` (``harness.answers.kinds``; each in its own process,
    ``jobs`` at a time), sorted by file."""
    audit = kind_audit(kind, scenario, rtol=rtol, atol=atol)
    calls = audit.calls()
    names = display_names(paths)

    def run(path: Path) -> tuple[Called | AuditResult, list[str], float]:
        start = time.monotonic()
        try:
            submission = load_submission(path)
        except BadInput as exc:
            reason = BadInput(names[path], exc.field, exc.expected, exc.received).one_line()
            return audit.crashed(function, reason, file=names[path]), [], time.monotonic() - start
        try:
            called = call_submission(submission.path, function, calls, timeout=timeout, cells=submission.cells,
                                     submission_adapter=submission_adapter)
        except NoSuchFunction:
            missing = no_such_function(submission, function)
            called = Called(error=BadInput(names[path], missing.field, missing.expected, missing.received).one_line())
        return called, submission.skipped, time.monotonic() - start

    outcomes: dict[Path, tuple[Called | AuditResult, list[str], float]] = {}
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = {pool.submit(run, path): path for path in paths}
        with tqdm(total=len(paths), unit="submission", disable=not progress) as bar:
            for future in as_completed(futures):
                outcomes[futures[future]] = future.result()
                bar.update(1)
    except BaseException:  # Ctrl-C: nothing more starts, and what runs is killed before the threads are joined
        pool.shutdown(wait=False, cancel_futures=True)
        stop_all()
        raise
    finally:
        pool.shutdown(wait=True)
    audit.expect()
    results = []
    for path in sorted(paths, key=lambda p: names[p]):
        outcome, skipped, seconds = outcomes[path]
        start = time.monotonic()
        result = outcome if isinstance(outcome, AuditResult) else audit.judge(function, outcome)
        result.file, result.skipped = names[path], skipped
        result.seconds = seconds + time.monotonic() - start
        results.append(result)
    return results


def audit_one(path: str | Path, function: str, scenario: Scenario, *, kind: str = "backward",
              timeout: float = TIMEOUT, submission_adapter: SubmissionAdapter | None = None) -> AuditResult:
    """One submission audited as ``kind``; an unreadable file or a missing function is ``BadInput``."""
    start = time.monotonic()
    audit = kind_audit(kind, scenario)
    submission = load_submission(path)
    try:
        called = call_submission(submission.path, function, audit.calls(), timeout=timeout, cells=submission.cells,
                                 submission_adapter=submission_adapter)
    except NoSuchFunction:
        raise no_such_function(submission, function) from None
    audit.expect()
    result = audit.judge(function, called)
    result.file, result.skipped = display_path(submission.path), submission.skipped
    result.seconds = time.monotonic() - start
    return result


def crashed(scenario: Scenario, function: str, reason: str, *, file: str, kind: str = "backward") -> AuditResult:
    """A submission that returned nothing at all (unreadable, or no such function): every quantity crashed."""
    return kind_audit(kind, scenario).crashed(function, reason, file=file)


# --- what an audit writes -----------------------------------------------------------------


def result_json(result: AuditResult, *, rtol: float = RTOL, atol: float = ATOL) -> dict[str, Any]:
    """One submission's audit: the object ``nn-parity audit FILE --json`` writes."""
    return {"scenario": result.scenario, "function": result.function, "file": result.file, "ok": result.ok,
            "verdict": result.verdict, "tolerance": {"rtol": rtol, "atol": atol}, "diagnosis": result.diagnosis,
            "crash": result.crash, "implementation_spread": result.source_spread,
            "parameters": _parameters(result), "skipped": result.skipped, "notes": result.notes,
            "seconds": round(result.seconds, 3), **_located(result)}


def _located(result: AuditResult) -> dict[str, Any]:
    """What a ``--kind`` audit adds: the kind, what was compared, where the submission first differs,
    the suspect, the measurement that confirmed the diagnosis, and (train) every comparison."""
    return {"kind": result.kind, "compared": result.compared, "first_divergent": result.step,
            "unit": result.unit, "stage": result.stage, "right_before": result.right, "suspect": result.suspect,
            "evidence": result.evidence, "comparisons": result.comparisons}


def batch_json(results: list[AuditResult], scenario: Scenario, function: str, *, rtol: float = RTOL,
               atol: float = ATOL) -> dict[str, Any]:
    """Several submissions: ``ok`` (every one correct) and one entry per submission, sorted by file."""
    return {"scenario": scenario.name, "function": function, "tolerance": {"rtol": rtol, "atol": atol},
            "ok": all(r.ok for r in results),
            "submissions": [{"file": r.file, "verdict": r.verdict, "diagnosis": r.mistake, "score": score(r),
                             "max_score": len(r.params), "parameters": _parameters(r), "skipped": r.skipped,
                             "notes": r.notes, "seconds": round(r.seconds, 3), **_located(r)} for r in results]}


def batch_csv(results: list[AuditResult]) -> str:
    """One row per submission for a gradebook: file, verdict, score, max_score, diagnosis."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "verdict", "score", "max_score", "diagnosis"])
    for r in results:
        writer.writerow([r.file, r.verdict, score(r), len(r.params), r.mistake])
    return out.getvalue()


def gradescope(result: AuditResult, *, rtol: float = RTOL, atol: float = ATOL) -> dict[str, Any]:
    """Gradescope's autograder ``results.json``: one test per parameter's gradient, one point each.

    Format (https://gradescope-autograders.readthedocs.io/en/latest/specs/): top-level ``score``
    (overrides the tests' total), ``execution_time`` (seconds), ``output`` (shown to the student)
    and ``tests``, each with ``name``, ``number``, ``score``, ``max_score``, ``status``
    (``passed``/``failed``) and ``output``."""
    tests = [{"name": scored_name(result, p), "number": str(i), "score": 1.0 if p.ok else 0.0,
              "max_score": 1.0, "status": "passed" if p.ok else "failed",
              "output": _param_output(p, rtol=rtol, atol=atol, backward=result.kind == "backward"),
              "visibility": "visible"} for i, p in enumerate(result.params, 1)]
    what = "gradients" if result.kind == "backward" else "checks"
    lines = [f"{title(result.kind, result.function, result.scenario)}: {result.verdict} "
             f"({score(result)} of {len(result.params)} {what} correct)"]
    if result.mistake:
        lines.append(result.mistake)
    if result.step is not None and result.diagnosis:
        lines.append(f"first difference: {result.unit} {result.step}, at `{result.stage}`")
    if result.skipped or result.notes:
        lines += ["", "not run from the notebook:", *result.skipped, *result.notes]
    return {"score": float(score(result)), "execution_time": round(result.seconds), "output": "\n".join(lines),
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


def title(kind: str, function: str, scenario: str) -> str:
    """The audit's one-line title: the gradient audit's, or ``--kind``'s with its interface."""
    if kind == "backward":
        return f"Gradient audit of {function} on {scenario}"
    return f"Audit of {function} as {INTERFACES[kind]} on {scenario}"


def scored_name(result: AuditResult, p: ParamAudit) -> str:
    """One scored quantity's name in Gradescope and the feedback."""
    if result.kind == "backward":
        return f"gradient of {p.label} ({p.name})"
    return p.label if p.name in ("loss", "output") else f"{p.label} ({p.name})" + (
        " at every step" if result.kind == "train" else "")


def batch_text(results: list[AuditResult], scenario: Scenario, function: str) -> str:
    """The terminal table: submission, verdict, each parameter's status, the named mistake, seconds."""
    labels = labels_of(scenario)
    counts = {v: sum(r.verdict == v for r in results) for v in ("correct", "wrong", "crashed")}
    rows = []
    for r in results:
        row = {"submission": r.file, "verdict": r.verdict}
        for p in r.params:
            row[labels.get(p.name, p.name)] = "ok" if p.ok else p.status.upper()
        row["mistake"] = r.mistake
        row["seconds"] = f"{r.seconds:.1f}"
        rows.append(row)
    kind = results[0].kind if results else "backward"
    where = " (float64, first batch, initial parameters)" if kind == "backward" else " (float64)"
    lines = [f"{title(kind, function, scenario.name)}{where}: "
             f"{len(results)} submissions, " + ", ".join(f"{n} {v}" for v, n in counts.items()), "",
             pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)]
    not_run = [r for r in results if r.skipped or r.notes]
    if not_run:
        lines += ["", "not run from notebooks (docs/audit.md: how cells are chosen; every line in --json):"]
        lines += [f"  {r.file}: " + "; ".join(_short(line) for line in [*r.skipped, *r.notes]) for r in not_run]
    return "\n".join(lines)


def result_text(result: AuditResult) -> str:
    """One submission's audit for the terminal: the gradient audit's table, or ``--kind``'s: each scored
    quantity against every implementation, where it first differs, the suspect, the cause and its evidence."""
    if result.kind == "backward":
        return audit_text(result)
    rows = []
    for p in result.params:
        row = {"quantity": p.label if p.name == p.label or p.name in ("loss", "output") else f"{p.name} ({p.label})",
               "status": "ok" if p.ok else p.status.upper()}
        row.update({f"vs {s}": f"{v:.2e}" for s, v in p.diffs.items()})
        row["note"] = p.message
        rows.append(row)
    lines = [f"{title(result.kind, result.function, result.scenario)} (float64): {result.verdict}", ""]
    if result.compared:
        lines += [f"compared: {result.compared}", ""]
    lines += [pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True), ""]
    if result.crash:
        lines.append(f"crashed: {result.crash}")
    if result.step is not None:
        lines.append(f"first difference: {result.unit} {result.step}, at `{result.stage}`")
        if result.right:
            lines.append(f"agrees before it: {'; '.join(result.right)}")
    if result.suspect:
        lines.append(result.suspect)
    if not result.ok and not result.crash:
        lines.append(f"cause: {result.diagnosis or NO_CAUSE}")
    if result.evidence:
        lines.append(f"confirmed: {result.evidence}")
    notes = [*result.skipped, *result.notes]
    if notes:
        lines += ["", "not run or not compared:", *[f"  {line}" for line in notes]]
    return "\n".join(lines)


def score(result: AuditResult) -> int:
    """Parameters whose gradient is correct: one point each."""
    return sum(p.ok for p in result.params)


def _parameters(result: AuditResult) -> list[dict[str, Any]]:
    return [{"name": p.name, "label": p.label, "status": p.status, "max_abs_diff": p.diffs, "max_rel": p.max_rel,
             "message": p.message} for p in result.params]


def _param_output(p: ParamAudit, *, rtol: float, atol: float, backward: bool = True) -> str:
    if backward and p.ok:
        return (f"correct: within {atol:g} + {rtol:g} x max(|yours|, |reference|) of the reference, torch, "
                f"Keras and finite differences (max abs difference {p.diffs['reference']:.2e})")
    sources = SOURCES if backward else tuple(p.diffs)
    if p.ok:
        return (f"correct: agrees with {', '.join(sources)} (max abs difference {max(p.diffs.values()):.2e})"
                if p.diffs else "correct")
    if p.diffs:
        others = ", ".join(f"{s} {p.diffs[s]:.2e}" for s in sources)
        return f"{p.status}: max abs difference from {others}" + (f"; {p.message}" if p.message else "")
    return f"{p.status}: {p.message}"


def _short(line: str) -> str:
    """``cell 4 (In [14]): skipped (reads files)`` as ``cell 4 (In [14]): reads files``."""
    where, _, what = line.partition(": ")
    if what.startswith("skipped (") and what.endswith(")"):
        what = what[len("skipped ("):-1]
    return f"{where}: {what}"


def _matches(pattern: str) -> list[Path]:
    """What ``pattern`` matches, sorted, as ``glob.glob(pattern, recursive=True)`` but for symlinked
    folders: ``**`` does not walk into them (``pathlib``), so two symlinks to their own folder cost
    nothing instead of a walk exponential in the depth. Hidden names match only a pattern part that
    starts with a dot, as in ``glob``."""
    parts = Path(pattern).parts
    first = next(i for i, part in enumerate(parts) if _is_pattern(part))
    root = Path(*parts[:first]) if first else Path()
    rest = parts[first:]
    hidden_asked = any(part.startswith(".") for part in rest)
    return sorted(m for m in root.glob(str(Path(*rest)))
                  if hidden_asked or not any(part.startswith(".") for part in m.relative_to(root).parts))


def _is_pattern(argument: str) -> bool:
    return any(c in argument for c in _PATTERN)


def _submission_file(path: Path) -> bool:
    """A ``.py`` or ``.ipynb`` file, or a symlink by such a name that leads to no folder (dangling, a
    loop: its row says why it cannot be read, it is never dropped silently)."""
    return path.suffix in SUFFIXES and not path.name.startswith(".") and (
        path.is_file() or (path.is_symlink() and not path.is_dir()))
