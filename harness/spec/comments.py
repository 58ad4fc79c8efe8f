"""What a scenario file says in comments that the format asks for: the reason for a tolerance
override, written in the comment block just above its ``[tolerance]`` table (README, "a scenario may
override them in [tolerance]; say why in a comment just above it, with what was measured"). TOML
drops comments, so they are read from the file's text."""
from __future__ import annotations

import re
from pathlib import Path

from harness.errors import BadInput
from harness.spec.fields import read_text

_TOLERANCE_TABLE = re.compile(r"\s*\[\s*tolerance(\s*\.\s*[A-Za-z0-9_]+)?\s*\]\s*(#.*)?")


def comment_above(lines: list[str], index: int) -> str:
    """The comment block right above ``lines[index]`` (contiguous lines starting with ``#``), as one
    line of text without the ``#`` marks; empty when there is none."""
    above: list[str] = []
    for line in reversed(lines[:index]):
        if not line.lstrip().startswith("#"):
            break
        above.append(line.lstrip()[1:].strip())
    return " ".join(part for part in reversed(above) if part)


def tolerance_reasons(text: str) -> list[str]:
    """The comment above each ``[tolerance]`` (or ``[tolerance.<dtype>]``) table of a scenario file's
    text, in file order (an empty string for a table without one)."""
    lines = text.splitlines()
    return [comment_above(lines, i) for i, line in enumerate(lines) if _TOLERANCE_TABLE.fullmatch(line)]


def tolerance_reason(path: str | Path) -> str:
    """Why the scenario file at ``path`` overrides a default tolerance, in its own words; empty when
    it gives no reason or the file cannot be read as a scenario file any more."""
    try:
        text = read_text(path, what="scenario file")
    except BadInput:
        return ""
    return " ".join(reason for reason in tolerance_reasons(text) if reason)
