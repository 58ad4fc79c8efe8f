"""Errors the CLI turns into one-line messages and exit codes."""
from __future__ import annotations

import re
from pathlib import Path

EXIT_AGREE = 0
EXIT_DISAGREE = 1
EXIT_BAD_INPUT = 2


class _Missing:
    def __repr__(self) -> str:
        return "nothing (the field is missing)"


MISSING = _Missing()

# Characters that would break the one line (newlines, other control characters, Unicode line
# separators): shown escaped, as Python writes them in a string literal.
_LINE_BREAKING = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


class BadInput(Exception):
    """Bad user input: names the file, the field and what was expected."""

    def __init__(self, file: str | Path, field: str, expected: str, received: object = None) -> None:
        self.file = str(file)
        self.field = field
        self.expected = expected
        self.received = received
        super().__init__(self.one_line())

    def __reduce__(self) -> tuple[type, tuple[str, str, str, object]]:
        """Pickled with its fields (an error raised in a worker process reaches the harness whole)."""
        return type(self), (self.file, self.field, self.expected, self.received)

    def one_line(self) -> str:
        """``file: field: expected ...; received ...``, always one line (control characters escaped)."""
        got = "" if self.received is None else f"; received {_short(self.received)}"
        where = f"{self.file}: {self.field}" if self.field else self.file
        return escape_controls(f"{where}: expected {self.expected}{got}")


def exception_line(exc: BaseException) -> str:
    """A crash as its type and the last line of its message: ``TypeError: ...`` (``TypeError: `` when
    the message is empty)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}"


def escape_controls(text: str) -> str:
    """``text`` with every line-breaking or control character escaped (``\\n``, ``\\x00``, ...)."""
    return _LINE_BREAKING.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
