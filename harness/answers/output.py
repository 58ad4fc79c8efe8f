"""A checked key as a terminal table, a markdown report and a JSON file; the exit code.

Exit codes: 0 every answer correct (or not reproducible, reported), 1 any wrong,
implausible, unanswered or harness fault, 2 the key (or one of its answers) is malformed.
"""
from __future__ import annotations

import textwrap
from collections import Counter

import numpy as np
import pandas as pd

from harness.answers.key_file import AnswerKey
from harness.answers.verdicts import FAILING, IMPLAUSIBLE, MALFORMED, UNANSWERED, WRONG, AnswerResult, PartCheck
from harness.errors import EXIT_AGREE, EXIT_BAD_INPUT, EXIT_DISAGREE
from harness.render.files import json_safe


def exit_code(results: list[AnswerResult]) -> int:
    if any(r.verdict == MALFORMED for r in results):
        return EXIT_BAD_INPUT
    return EXIT_DISAGREE if any(r.verdict in FAILING for r in results) else EXIT_AGREE


NOTE_WIDTH = 120  # the terminal table's note column; longer notes end at a word, with " ..."
SHOWS_COMPUTED = (WRONG, IMPLAUSIBLE, UNANSWERED)  # verdicts whose terminal row shows the correct value


def _single_spaced(text: str) -> str:
    """``text``'s words separated by single spaces (a printed array's rows on one line)."""
    return " ".join(text.split())


def note_text(text: str, *, width: int = NOTE_WIDTH) -> str:
    """``text`` on one line, shortened at a word boundary (never mid-word) to at most ``width`` characters."""
    return textwrap.shorten(text, width=width, placeholder=" ...") if text.strip() else ""


def _by_part(result: AnswerResult, text) -> str:
    pieces = [(p.part, text(p)) for p in result.parts]
    pieces = [(name, t) for name, t in pieces if t is not None]
    if not pieces:
        return "-"
    if len(pieces) == 1 and pieces[0][0] == "value":
        return pieces[0][1]
    return "; ".join(f"{name} = {t}" for name, t in pieces)


def _expected(p: PartCheck) -> str | None:
    return None if p.expected is None else _single_spaced(p.expected.text)


def _computed(p: PartCheck) -> str:
    return _single_spaced(p.computed_text())


def _diff(p: PartCheck) -> str | None:
    """The largest difference; for a wrong part, the wrong element's, with its index."""
    if p.expected is None:
        return None
    element = p.worst() if not p.ok else None
    if element is None:
        return f"{p.max_abs_diff:.2e}"
    return f"{element.diff:.2e}" + (f" at {element.where}" if element.where else "")


def _tolerance(p: PartCheck) -> str | None:
    """The largest allowance; for a wrong part, the wrong element's own, beside its difference."""
    if p.expected is None or p.tolerance is None or p.printed_tol is None:
        return None
    element = p.worst() if not p.ok else None
    if element is not None:
        at = f" at {element.where}" if element.where else ""
        return f"{element.allowed:.2e}{at} (printed {element.printed:.1e})"
    text = f"{float(np.max(p.tolerance)):.2e} (printed {float(np.max(p.printed_tol)):.1e}"
    if p.propagated_tol is not None:
        text += f" + inputs {float(np.max(p.propagated_tol)):.1e}"
    return text + ")"


def summary_table(results: list[AnswerResult]) -> pd.DataFrame:
    rows = []
    for r in results:
        rows.append({"id": r.id, "kind": r.kind, "verdict": r.verdict.upper() if r.verdict in FAILING or
                     r.verdict == MALFORMED else r.verdict,
                     "correct value": _by_part(r, _computed) if r.verdict in SHOWS_COMPUTED else "-",
                     "difference": _by_part(r, _diff), "tolerance": _by_part(r, _tolerance),
                     "note": note_text(r.message or "; ".join(r.warnings))})
    return pd.DataFrame(rows)


def markdown_report(key: AnswerKey, results: list[AnswerResult], *, frameworks: tuple[str, ...]) -> str:
    counts = Counter(r.verdict for r in results)
    lines = [f"# Answer key: {key.title}", "", f"Key file: `{key.path}`" + (f"; source: {key.source}" if key.source
                                                                               else ""), "",
             f"Each answer computed in float64 (or the dtype a scenario answer pins) by {', '.join(frameworks)}; "
             "the implementations must agree first.",
             "Tolerance per element = half a unit in the last printed digit (or the key's rtol/atol) + the",
             "arithmetic of its dtype (float64 1e-14 + 1e-12*|e|, float32 1e-7 + 1e-5*|e|) + the uncertainty",
             "propagated from rounded inputs (central differences of the reference).", "",
             "Verdicts: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())), ""]
    rows = []
    for r in results:
        rows.append({"id": r.id, "question": r.kind, "expected": _by_part(r, _expected),
                     "computed": _by_part(r, _computed), "difference": _by_part(r, _diff),
                     "tolerance": _by_part(r, _tolerance), "verdict": r.verdict})
    lines += [pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True), ""]
    details = [r for r in results if r.verdict != "correct" or r.warnings or r.expected_from]
    if details:
        lines += ["## Details", ""]
    for r in details:
        lines.append(f"### {r.id}: {r.verdict}")
        lines.append("")
        if r.message:
            lines += [r.message, ""]
        for w in r.warnings:
            lines += [f"- warning: {w}"]
        if r.warnings:
            lines.append("")
        for p in r.parts:
            label = "" if p.part == "value" else f" ({p.part})"
            if r.verdict in ("wrong", "unanswered", "implausible", "not-reproducible"):
                title = ("value to print" if p.expected is None else "the harness's value, printed as the key prints it"
                         if r.verdict == "not-reproducible" else "correct value, printed as the key prints it")
                lines += [f"{title}{label}:", "", "```", p.computed_text(), "```", ""]
            if p.expected is not None:
                lines += [f"tolerance{label}: {p.rule}", ""]
        if r.spread or r.agreement_tol:
            lines += [f"implementations agree to {r.spread:.1e}" + (
                f" (allowed rtol {r.agreement_tol.rtol:g}, atol {r.agreement_tol.atol:g})" if r.agreement_tol else ""),
                ""]
        if r.source:
            lines += [f"source: {r.source}", ""]
        for part, where in r.expected_from.items():
            lines += [f"expected{'' if part == 'value' else f' ({part})'} read from {where}", ""]
    return "\n".join(lines)


def _parts_json(r: AnswerResult, fn):
    values = {p.part: fn(p) for p in r.parts}
    return values.get("value") if set(values) == {"value"} else values


def _element_json(p: PartCheck) -> dict | None:
    """The element farthest beyond (or closest to) its own allowance, and how many are beyond theirs."""
    element = p.worst()
    if element is None:
        return None
    return {"index": list(element.index), "computed": element.computed, "expected": element.expected,
            "difference": element.diff, "allowed": element.allowed, "elements_beyond": p.beyond()}


def result_json(key: AnswerKey, results: list[AnswerResult], *, frameworks: tuple[str, ...]) -> dict:
    answers = []
    for r in results:
        diffs = [p.max_abs_diff for p in r.parts if p.max_abs_diff is not None]
        answers.append({
            "id": r.id, "kind": r.kind, "verdict": r.verdict, "dtype": r.dtype,
            "expected": _parts_json(r, lambda p: None if p.expected is None else p.expected.values.tolist()),
            "expected_text": _parts_json(r, lambda p: None if p.expected is None else p.expected.text),
            "computed": _parts_json(r, lambda p: p.computed.tolist()),
            "computed_text": _parts_json(r, lambda p: p.computed_text()),
            "max_abs_diff": max(diffs) if diffs else None,
            "tolerance": _parts_json(r, lambda p: None if p.expected is None else {
                "total": p.tolerance.tolist(), "printed": p.printed_tol.tolist(),
                "arithmetic": p.arithmetic_tol.tolist(),
                "propagated": None if p.propagated_tol is None else np.asarray(p.propagated_tol).tolist(),
                "rule": p.rule}),
            "worst_element": _parts_json(r, _element_json),
            "implementations": {fw: (v if isinstance(v, str) else "ok") for fw, v in r.by_framework.items()},
            "implementation_spread": r.spread,
            "message": r.message, "warnings": r.warnings, "source": r.source,
            "expected_from": _parts_json(r, lambda p: r.expected_from.get(p.part)),
        })
    return json_safe({"key": str(key.path), "title": key.title, "frameworks": list(frameworks), "dtype": "float64",
                   "summary": dict(Counter(r.verdict for r in results)), "answers": answers})

