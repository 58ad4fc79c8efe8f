"""Errors the CLI turns into one-line messages and exit codes."""
from __future__ import annotations

from pathlib import Path

EXIT_AGREE = 0
EXIT_DISAGREE = 1
EXIT_BAD_INPUT = 2


class _Missing:
    def __repr__(self) -> str:
        return "nothing (the field is missing)"


MISSING = _Missing()


class BadInput(Exception):
    """Bad user input: names the file, the field and what was expected."""

    def __init__(self, file: str | Path, field: str, expected: str, received: object = None) -> None:
        self.file = str(file)
        self.field = field
        self.expected = expected
        self.received = received
        super().__init__(self.one_line())

    def one_line(self) -> str:
        got = "" if self.received is None else f"; received {_short(self.received)}"
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: expected {self.expected}{got}"


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
