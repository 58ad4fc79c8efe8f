"""Reading TOML files and typed reads from a parsed TOML table, each failure a one-line
``BadInput`` naming the file and the dotted field.

``read_toml`` is the one reader of scenario files and answer keys: it refuses what is not a
regular, readable, UTF-8 text file (a directory, a FIFO, a binary or UTF-16 file), invalid
TOML and TOML nested deeper than ``MAX_DEPTH``, before anything else reads the file.

Numbers are finite (``nan``/``inf`` are refused) unless a field is where a lab prints them
(``allow_nonfinite``: a lab value, an answer key's expected value); integers fit in int64;
seeds fit numpy's ``RandomState`` (``[0, 2**32 - 1]``).
"""
from __future__ import annotations

import math
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import MISSING, BadInput

_MISSING = object()

MAX_BYTES = 64 * 1024 * 1024  # far above any scenario or key (inline data included)
MAX_DEPTH = 64  # arrays and tables nested in each other; the formats need fewer than 10
INT64 = (-(2 ** 63), 2 ** 63 - 1)
SEED_MAX = 2 ** 32 - 1  # np.random.RandomState refuses larger seeds
FINITE = "a finite number"
_BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16",
         b"\xfe\xff": "UTF-16"}
_UTF8_BOM = b"\xef\xbb\xbf"


# --- reading a file -------------------------------------------------------------

def read_text(path: str | Path, *, what: str) -> str:
    """The UTF-8 text of the regular file ``path`` (``what``: "scenario file", "answer-key file", for
    messages). Never blocks on a FIFO (its type is checked before it is opened); a UTF-8 byte-order
    mark is dropped."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise BadInput(path, "", f"an existing {what}", "no such file") from None
    except (OSError, ValueError) as exc:
        raise BadInput(path, "", f"a readable {what}", _reason(exc)) from None
    if stat.S_ISDIR(info.st_mode):
        raise BadInput(path, "", f"a {what}", "a directory")
    if not stat.S_ISREG(info.st_mode):
        raise BadInput(path, "", f"a regular {what}", f"a {_file_type(info.st_mode)}")
    if info.st_size > MAX_BYTES:
        raise BadInput(path, "", f"a {what} of at most {MAX_BYTES // 2 ** 20} MiB", f"{info.st_size} bytes")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a swapped-in FIFO cannot block either
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise BadInput(path, "", f"a regular {what}", "something else")
            data = handle.read(MAX_BYTES + 1)
    except PermissionError:
        raise BadInput(path, "", f"a readable {what}", "permission denied") from None
    except OSError as exc:
        raise BadInput(path, "", f"a readable {what}", _reason(exc)) from None
    return _decode(data, path=path)


def read_toml(path: str | Path, *, what: str) -> dict[str, Any]:
    """The parsed TOML of ``path`` (``read_text``), nested at most ``MAX_DEPTH`` deep."""
    text = read_text(path, what=what)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(path, "", "valid TOML", str(exc)) from None
    except RecursionError:  # tomllib recurses at every level: thousands of '[' exhaust the stack
        raise BadInput(path, "", f"TOML nested at most {MAX_DEPTH} levels deep", f"more than {MAX_DEPTH}") from None
    if _too_deep(raw):
        raise BadInput(path, "", f"TOML nested at most {MAX_DEPTH} levels deep", f"more than {MAX_DEPTH}")
    return raw


def _decode(data: bytes, *, path: Path) -> str:
    if len(data) > MAX_BYTES:
        raise BadInput(path, "", f"a file of at most {MAX_BYTES // 2 ** 20} MiB", "more")
    for bom, encoding in _BOMS.items():
        if data.startswith(bom):
            raise BadInput(path, "", "UTF-8 text", f"{encoding} text (byte-order mark {bom.hex(' ').upper()})")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise BadInput(path, "", "a UTF-8 text file", f"binary data (a NUL byte at offset {nul})")
    try:
        return data.removeprefix(_UTF8_BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BadInput(path, "", "UTF-8 text",
                       f"the byte 0x{data[exc.start]:02x} at line {line}, which is not UTF-8 (latin-1?)") from None


def _too_deep(value: Any) -> bool:
    """Arrays and tables nested more than ``MAX_DEPTH`` deep in ``value`` (iterative: any depth is safe;
    the readers after this one recurse)."""
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        children = list(node.values()) if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth + 1 > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _file_type(mode: int) -> str:
    for check, name in ((stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"),
                        (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if check(mode):
            return name
    return "special file"


# --- typed reads ----------------------------------------------------------------


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

    def integer(self, key: str, default: Any = _MISSING, *, minimum: int | None = None,
                maximum: int | None = None) -> int:
        """An integer (never a bool) in ``[minimum, maximum]``, and always within int64."""
        value = self._get(key, default, "an integer")
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, "an integer", value)
        if minimum is not None and value < minimum:
            raise self.error(key, f"an integer >= {minimum}", value)
        if maximum is not None and value > maximum:
            raise self.error(key, f"an integer <= {maximum}", value)
        if not INT64[0] <= value <= INT64[1]:
            raise self.error(key, "an integer within int64 (-2**63 to 2**63 - 1)", value)
        return value

    def seed(self, key: str, default: Any = _MISSING) -> int:
        """A random seed: an integer in ``[0, 2**32 - 1]`` (what ``np.random.RandomState`` accepts)."""
        value = self._get(key, default, "an integer seed")
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEED_MAX:
            raise self.error(key, "an integer seed in [0, 2**32 - 1] (numpy's RandomState)", value)
        return value

    def number(
        self, key: str, default: Any = _MISSING, *, minimum: float | None = None, below: float | None = None
    ) -> float:
        """A finite number (an integer or a float; never nan or inf)."""
        value = self._get(key, default, "a number")
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, "a number", value)
        number = _finite_float(value)
        if number is None:
            raise self.error(key, FINITE, value)
        if minimum is not None and not number >= minimum:
            raise self.error(key, f"a number >= {minimum}", value)
        if below is not None and not number < below:
            raise self.error(key, f"a number < {below}", value)
        return number

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        value = self._get(key, default, "true or false")
        if not isinstance(value, bool):
            raise self.error(key, "true or false", value)
        return value

    def array(self, key: str, default: Any = _MISSING, *, ndim: int | None = None,
              allow_nonfinite: bool = False) -> np.ndarray:
        """A numeric array of finite numbers (``allow_nonfinite``: nan and inf too, where a lab prints them)."""
        value = self._get(key, default, "a numeric array")
        if value is default and default is not _MISSING:
            return value
        return to_array(value, file=self.file, field=self.field(key), ndim=ndim, allow_nonfinite=allow_nonfinite)

    def _get(self, key: str, default: Any, expected: str) -> Any:
        value = self.data.get(key, default)
        if value is _MISSING:
            raise self.error(key, expected, MISSING)
        return value


def to_array(value: Any, *, file: str, field: str, ndim: int | None = None,
             allow_nonfinite: bool = False) -> np.ndarray:
    """A nested list of numbers as a float64 array; ragged or non-numeric input is an error, and so
    is nan or inf unless ``allow_nonfinite``."""
    _check_numeric(value, file=file, field=field)
    try:
        arr = np.array(value, dtype=np.float64)
    except ValueError:
        raise BadInput(file, field, "a rectangular (non-ragged) numeric array", value) from None
    except OverflowError:  # an integer literal beyond float64's range
        raise BadInput(file, field, f"{FINITE} in every element (within float64's range)", value) from None
    if ndim is not None and arr.ndim != ndim:
        raise BadInput(file, field, f"a {ndim}-dimensional array", f"shape {arr.shape}")
    if not allow_nonfinite and not np.all(np.isfinite(arr)):
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        at = f" at {list(index)}" if index else ""
        raise BadInput(file, field, f"{FINITE}{at} (nan and inf only where a lab printed them)",
                       float(arr[index]))
    return arr


def _finite_float(value: int | float) -> float | None:
    """``value`` as a float, or None when it is nan, inf or an integer beyond float64's range."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None



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
