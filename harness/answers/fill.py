"""A key written back with every missing answer filled in (``nn-parity answers``).

The file is edited as text, so comments, order and formatting stay as they were. Each
unanswered ``[[answer]]`` gets, after its last field and before any ``[answer.sub]``
table of its own, ``expected = `` with a multi-line string holding numpy's ``print``
output of the computed value as numpy holds it (``verdicts.numpy_text``: integers as
integers, a float32 answer as float32) at the key's print precision (the answer's or
``[defaults]``' ``printed_precision``; numpy's default 8 otherwise, then written as
``printed_precision = 8`` so that its trimmed zeros count). Table-valued answers
(gradients, parameters) get an inline table ``expected = { w = ..., b = ... }`` of such
strings. Answers that are malformed or where the implementations disagree are left empty.
"""
from __future__ import annotations

import re

from harness.answers.verdicts import UNANSWERED, AnswerResult

_ANSWER_HEADER = re.compile(r"^\s*\[\[\s*answer\s*\]\]\s*(#.*)?$")
_TABLE_HEADER = re.compile(r"^\s*\[")


def expected_toml(result: AnswerResult) -> str:
    def block(text: str) -> str:
        return f'"""\n{text}\n"""'

    if [p.part for p in result.parts] == ["value"]:
        return f"expected = {block(result.parts[0].computed_text())}"
    inner = ", ".join(f"{p.part} = {block(p.computed_text())}" for p in result.parts)
    return f"expected = {{ {inner} }}"


def filled_text(text: str, results: list[AnswerResult]) -> str:
    """``text`` with an ``expected`` inserted into each answer whose verdict is unanswered.

    ``results`` are in the order of the key's ``[[answer]]`` tables.
    """
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _ANSWER_HEADER.match(line)]
    if len(starts) != len(results):
        raise ValueError(f"found {len(starts)} [[answer]] headers for {len(results)} answers")
    insertions: list[tuple[int, str]] = []
    for n, (start, result) in enumerate(zip(starts, results)):
        if result.verdict != UNANSWERED:
            continue
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        for i in range(start + 1, end):
            if _TABLE_HEADER.match(lines[i]):
                end = i
                break
        last = start
        for i in range(start + 1, end):
            stripped = lines[i].strip()
            if stripped and not stripped.startswith("#"):
                last = i
        block = "# filled by nn-parity answers\n" + expected_toml(result)
        # neither the answer nor [defaults] sets a precision, and a trimmed decimal could need one
        if result.printed_precision is None and any("." in p.computed_text() for p in result.parts):
            block += "\nprinted_precision = 8  # numpy's print precision: trimmed zeros are significant"
        insertions.append((last + 1, block))
    for index, block in reversed(insertions):
        lines[index:index] = block.split("\n")
    return "\n".join(lines) + "\n"
