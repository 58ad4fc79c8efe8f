"""Typed reads from a parsed TOML table, each failure a one-line ``BadInput``
naming the file and the dotted field."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import MISSING, BadInput

_MISSING = object()


class Table:
    """A TOML table with its file and dotted location, for error messages."""

    def __init__(self, data: dict[str, Any], *, file: str | Path, where: str = "") -> None:
        self.data = data
        self.file = str(file)
        self.where = where

    def field(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def error(self, key: str, expected: str, received: object = None) -> BadInput:
        return BadInput(self.file, self.field(key), expected, received)

    def has(self, key: str) -> bool:
        return key in self.data

    def check_keys(self, allowed: set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                raise self.error(key, f"one of the known fields {sorted(allowed)}", key)

    def sub(self, key: str, *, required: bool = True) -> "Table":
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            if required:
                raise self.error(key, "a table", MISSING)
            return Table({}, file=self.file, where=self.field(key))
        if not isinstance(value, dict):
            raise self.error(key, "a table", value)
        return Table(value, file=self.file, where=self.field(key))

    def tables(self, key: str, *, required: bool = True) -> list["Table"]:
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            if required:
                raise self.error(key, "an array of tables ([[...]])", MISSING)
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(key, "an array of tables ([[...]])", value)
        return [Table(v, file=self.file, where=f"{self.field(key)}[{i}]") for i, v in enumerate(value)]

    def string(self, key: str, default: Any = _MISSING, *, choices: tuple[str, ...] | None = None) -> str:
        value = self._get(key, default, "a string")
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str):
            raise self.error(key, "a string" + (f" in {list(choices)}" if choices else ""), value)
        if choices is not None and value not in choices:
            raise self.error(key, f"one of {list(choices)}", value)
        return value

    def integer(self, key: str, default: Any = _MISSING, *, minimum: int | None = None) -> int:
        value = self._get(key, default, "an integer")
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, "an integer", value)
        if minimum is not None and value < minimum:
            raise self.error(key, f"an integer >= {minimum}", value)
        return value

    def number(
        self, key: str, default: Any = _MISSING, *, minimum: float | None = None, below: float | None = None
    ) -> float:
        value = self._get(key, default, "a number")
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, "a number", value)
        if minimum is not None and not value >= minimum:
            raise self.error(key, f"a number >= {minimum}", value)
        if below is not None and not value < below:
            raise self.error(key, f"a number < {below}", value)
        return float(value)

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        value = self._get(key, default, "true or false")
        if not isinstance(value, bool):
            raise self.error(key, "true or false", value)
        return value

    def array(self, key: str, default: Any = _MISSING, *, ndim: int | None = None) -> np.ndarray:
        value = self._get(key, default, "a numeric array")
        if value is default and default is not _MISSING:
            return value
        return to_array(value, file=self.file, field=self.field(key), ndim=ndim)

    def _get(self, key: str, default: Any, expected: str) -> Any:
        value = self.data.get(key, default)
        if value is _MISSING:
            raise self.error(key, expected, MISSING)
        return value


def to_array(value: Any, *, file: str, field: str, ndim: int | None = None) -> np.ndarray:
    """A nested list of numbers as a float64 array; ragged or non-numeric input is an error."""
    _check_numeric(value, file=file, field=field)
    try:
        arr = np.array(value, dtype=np.float64)
    except ValueError:
        raise BadInput(file, field, "a rectangular (non-ragged) numeric array", value) from None
    if ndim is not None and arr.ndim != ndim:
        raise BadInput(file, field, f"a {ndim}-dimensional array", f"shape {arr.shape}")
    return arr


def _check_numeric(value: Any, *, file: str, field: str) -> None:
    if isinstance(value, list):
        lengths = {len(v) for v in value if isinstance(v, list)}
        rows = [isinstance(v, list) for v in value]
        if any(rows) and (len(lengths) > 1 or not all(rows)):
            raise BadInput(file, field, "a rectangular (non-ragged) numeric array", value)
        for v in value:
            _check_numeric(v, file=file, field=field)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(file, field, "numbers only", value)
