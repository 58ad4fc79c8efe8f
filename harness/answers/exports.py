"""What an audit exports beyond its own JSON and CSV: a student's feedback, a Gradescope
``results.json`` per submission, a gradebook CSV for Canvas and Moodle, and a DataFrame.

* ``feedback``: one short markdown text per submission (``nn-parity audit --feedback DIR``):
  what is right, the first thing that is wrong and where, and the evidence, in words and
  differences only — never the expected values (the answer key's numbers stay with the staff).
* ``gradescope_files``: ``{file name: results.json}``, one per submission of a batch
  (``--gradescope DIR``), each in Gradescope's format (``harness.answers.batch.gradescope``).
* ``gradebook_csv``: ``--gradebook PATH``, the columns Canvas' gradebook import reads
  (``Student``, ``ID``, ``SIS User ID``, ``SIS Login ID``, ``Section``, then one column per
  assignment: here ``<function> (<points>)`` with the score) and Moodle's CSV grade import maps
  (an identifier column — map ``SIS Login ID`` to "username" or ``ID`` to "ID number" — a grade
  column and ``Feedback``, mapped to the grade item's feedback). The student is the submission's
  name without its suffix (``alice.ipynb`` -> ``alice``; ``alice/hw.ipynb`` -> ``alice``: the
  folder when files share one name); ``ID`` and ``SIS User ID`` are left empty for the import to
  match on the login.
* ``audit_frame``: the audit as a pandas DataFrame, one row per submission and scored quantity.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import PurePosixPath
from typing import Any

import pandas as pd

from harness.answers.audit import AuditResult
from harness.answers.batch import gradescope, score, scored_name, title


def file_name(result: AuditResult, suffix: str) -> str:
    """A submission's own file name in an export folder: its path as shown, folders joined by ``__``."""
    return result.file.replace("/", "__") + suffix


def gradescope_files(results: list[AuditResult]) -> dict[str, bytes]:
    """One Gradescope ``results.json`` per submission, named after it (``alice.py.results.json``)."""
    return {file_name(r, ".results.json"): json.dumps(gradescope(r), indent=2).encode() + b"\n" for r in results}


def feedback_files(results: list[AuditResult]) -> dict[str, bytes]:
    return {file_name(r, ".md"): feedback(r).encode() for r in results}


def feedback(result: AuditResult) -> str:
    """What a student reads: the verdict, what is right, the first thing that is wrong, where, and
    the evidence (differences and the named mistake; no expected value)."""
    lines = [f"# {title(result.kind, result.function, result.scenario)}", "",
             f"**{result.file}: {result.verdict}** ({score(result)} of {len(result.params)} checks correct)", ""]
    if result.compared:
        lines += [f"Compared: {result.compared}, with the NumPy reference, Keras and PyTorch.", ""]
    right = [scored_name(result, p) for p in result.params if p.ok] + result.right
    lines += ["## What is right", ""]
    lines += [f"- {name}" for name in right] if right else ["- nothing yet: see below"]
    lines.append("")
    if result.ok:
        lines += ["Everything agrees with every implementation within the tolerance.", ""]
        return "\n".join(lines)
    lines += ["## The first thing that is wrong", ""]
    if result.crash:
        lines += [f"Your code did not return a result: {result.crash}", ""]
    else:
        if result.step is not None:
            lines.append(f"- where: {result.unit} {result.step}, at `{result.stage}`")
        wrong = [p for p in result.params if not p.ok]
        for p in wrong:
            size = ""
            if p.diffs:
                size = f": off by up to {max(p.diffs.values()):.2e}"
                if p.max_rel is not None:
                    size += f" ({p.max_rel:.1e} relative)"
            lines.append(f"- {scored_name(result, p)}: {p.status}{size}" + (f"; {p.message}" if p.message else ""))
        lines += ["", f"**{result.mistake}**", ""]
    if result.evidence or result.suspect:
        lines += ["## The evidence", ""]
        if result.suspect:
            lines.append(f"- {result.suspect.replace('submission', 'your code')}")
        if result.evidence:
            lines.append(f"- {result.evidence}")
        lines.append("")
    notes = [*result.skipped, *result.notes]
    if notes:
        lines += ["## Not run or not compared", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def student(result: AuditResult, shared_names: bool) -> str:
    """The student a submission belongs to: its file's stem, or its folder's name when the class's
    files share one name (``alice/hw.ipynb``)."""
    path = PurePosixPath(result.file)
    return path.parent.name if shared_names and path.parent.name else path.stem


def gradebook_csv(results: list[AuditResult]) -> str:
    """The gradebook CSV (see the module): one row per submission."""
    stems = [PurePosixPath(r.file).name for r in results]
    shared = len(set(stems)) < len(stems)
    points = max((len(r.params) for r in results), default=0)
    column = f"{results[0].function} ({points})" if results else "audit"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", column, "Feedback"])
    for r in results:
        name = student(r, shared)
        writer.writerow([name, "", "", name, "", score(r), f"{r.verdict}: {r.mistake}" if r.mistake else r.verdict])
    return out.getvalue()


def audit_frame(results: list[AuditResult]) -> pd.DataFrame:
    """One row per submission and scored quantity: ``file``, ``kind``, ``function``, ``verdict``,
    ``quantity``, ``label``, ``status``, ``ok``, ``max_abs_<source>`` (one column per implementation
    compared), ``max_rel``, ``first_divergent`` (the submission's first differing step or point),
    ``stage``, ``diagnosis``, ``score``, ``max_score``."""
    rows: list[dict[str, Any]] = []
    for r in results:
        for p in r.params:
            rows.append({"file": r.file, "kind": r.kind, "function": r.function, "verdict": r.verdict,
                         "quantity": p.name, "label": p.label, "status": p.status, "ok": p.ok,
                         **{f"max_abs_{source}": value for source, value in p.diffs.items()},
                         "max_rel": p.max_rel, "first_divergent": r.step, "stage": r.stage,
                         "diagnosis": r.mistake, "score": score(r), "max_score": len(r.params)})
    return pd.DataFrame(rows)
