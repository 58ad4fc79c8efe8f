"""Numbers as numpy (or Python) printed them: values, and the precision each printed digit claims.

Accepted styles (pasted as a TOML string, or written as TOML numbers)::

    [[0.99966465]           numpy print(): rows on lines, elements padded with spaces
     [0.99752738]]
    [1.6 ]                  a trimmed element (zeros dropped, the space keeps the width)
    array([[0.01],          repr() of an array, commas, optional dtype=float32
    [0.73]])
    np.float64(203.1757236001885)    numpy 2 scalar repr
    9.82e-01                scientific notation
    -3.1999999999999993     Python float repr
    [0.5265, 0.4735]        a Python list
    [[1], [8]]              integers: exact

Half a unit in the last printed digit, per element (``half_unit``, the one digits-to-tolerance
rule: the scenario format's ``[[lab_values]]`` ``decimals`` / ``significant`` use it too):

* fixed notation: ``0.5 * 10**-d`` where ``d`` is the array's number of decimals. numpy
  prints every element of one array to the same width and trims trailing zeros, padding
  with spaces: ``0.5000211 `` printed among 8-decimal numbers is ``0.50002110``. A trimmed
  element therefore takes the array's precision: the digits it shows plus its padding,
  and at least the largest number of decimals shown in the array. When every element is
  trimmed (``[[1.], [1.]]``) the print precision is unknown, and the shown digits are used
  (lenient: never a false "wrong"); a key states numpy's setting with ``printed_precision``
  (numpy's default is 8) to make such trimmed elements count at that precision.
* scientific notation: ``s`` significant digits (the mantissa's decimals + 1), half a unit in
  the last per element: ``0.5 * 10**(floor(log10|v|) - s + 1)``, which is
  ``0.5 * 10**(exponent - mantissa decimals)`` for a normalised mantissa.
* integers: 0 (exact).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_NUMBER = r"[-+]?(?:nan|inf|\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
_TOKEN = re.compile(rf"\s*(?:(?P<open>\[)|(?P<close>\])|(?P<comma>,)|(?P<num>{_NUMBER})(?P<pad> *))", re.IGNORECASE)
_WRAPPED_SCALAR = re.compile(r"^np\.(?P<dtype>float64|float32|float16|int64|int32)\((?P<body>.*)\)$", re.DOTALL)
_WRAPPED_ARRAY = re.compile(r"^array\((?P<body>.*?)(?:,\s*dtype=(?P<dtype>\w+))?\)$", re.DOTALL)


class PrintedError(ValueError):
    """The text is not a printed number or array."""


@dataclass(frozen=True)
class PrintStyle:
    """How a value was printed, so a computed value can be printed the same way."""

    notation: str  # "integer", "fixed" or "scientific"
    decimals: int  # fixed: digits after the point; scientific: mantissa digits after the point
    wrapper: str  # "plain" (print), "array" (repr), "scalar" (np.float64(...)) or "list" (commas)
    dtype: str | None = None  # dtype=float32 in an array repr, or np.float32(...)


@dataclass(frozen=True)
class Printed:
    values: np.ndarray  # float64, the printed shape (() for a scalar)
    half_unit: np.ndarray  # same shape: half a unit in the last printed digit
    style: PrintStyle
    text: str


def half_unit(values: npt.ArrayLike, *, decimals: int | None = None, significant: int | None = None) -> np.ndarray:
    """Half a unit in the last printed digit of each of ``values`` (float64, their shape).

    ``decimals``: fixed notation with that many digits after the point, ``0.5 * 10**-decimals``.
    ``significant``: that many significant digits per element,
    ``0.5 * 10**(floor(log10|v|) - significant + 1)`` (a 0 counts as ``10**0``).
    Neither: integers, exact (0).
    """
    v = np.asarray(values, dtype=np.float64)
    if decimals is not None and significant is not None:
        raise ValueError("decimals or significant digits, not both")
    if decimals is not None:
        return np.full(v.shape, 0.5 * 10.0 ** -decimals)
    if significant is not None:
        magnitude = np.floor(np.log10(np.where(v == 0, 1.0, np.abs(v))))
        return 0.5 * 10.0 ** (magnitude - significant + 1)
    return np.zeros(v.shape)


def parse_printed(value: object, *, printed_precision: int | None = None) -> Printed:
    """A TOML string of printed output, or TOML numbers (read as if printed by Python)."""
    text = value if isinstance(value, str) else _toml_to_text(value)
    body, wrapper, dtype = _unwrap(text.strip())
    tree, notations = _parse_body(body)
    values = np.array(tree, dtype=np.float64)
    style, half = _precision(notations, values, wrapper=wrapper, dtype=dtype, printed_precision=printed_precision)
    return Printed(values=values, half_unit=half, style=style, text=text)


def _toml_to_text(value: object) -> str:
    if isinstance(value, bool):
        raise PrintedError(f"a number, not {value!r}")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_to_text(v) for v in value) + "]"
    raise PrintedError(f"numbers or printed text, not {type(value).__name__}")


def _unwrap(text: str) -> tuple[str, str, str | None]:
    m = _WRAPPED_SCALAR.match(text)
    if m:
        return m["body"].strip(), "scalar", m["dtype"]
    m = _WRAPPED_ARRAY.match(text)
    if m:
        return m["body"].strip(), "array", m["dtype"]
    return text, ("list" if "," in text else "plain"), None


def _parse_body(body: str) -> tuple[object, list[tuple[str, int]]]:
    """Nested lists of floats, and (number text, padding) per element in order."""
    if not body:
        raise PrintedError("no number")
    pos = 0
    stack: list[list[object]] = [[]]
    notations: list[tuple[str, int]] = []
    while pos < len(body):
        m = _TOKEN.match(body, pos)
        if m is None or m.end() == pos:
            rest = body[pos:].strip()
            if not rest:
                break
            raise PrintedError(f"cannot read {rest[:20]!r} as a printed number")
        pos = m.end()
        if m["open"]:
            stack.append([])
        elif m["close"]:
            if len(stack) < 2:
                raise PrintedError("unbalanced ']'")
            done = stack.pop()
            stack[-1].append(done)
        elif m["num"]:
            stack[-1].append(float(m["num"]))
            following = body[pos:pos + 1]
            pad = len(m["pad"]) - (1 if following and following not in "],\n" else 0)
            notations.append((m["num"], max(pad, 0)))
    if len(stack) != 1:
        raise PrintedError("unbalanced '['")
    items = stack[0]
    if len(items) != 1:
        raise PrintedError(f"one number or one array, found {len(items)} items")
    root = items[0]
    _check_rectangular(root)
    return root, notations


def _check_rectangular(tree: object) -> None:
    if not isinstance(tree, list):
        return
    kinds = {isinstance(t, list) for t in tree}
    if len(kinds) > 1:
        raise PrintedError("a ragged array (numbers mixed with rows)")
    if kinds == {True}:
        shapes = {np.shape(t) for t in tree}
        if len({len(t) for t in tree}) > 1 or len(shapes) > 1:
            raise PrintedError("a ragged array (rows of different lengths)")
        for t in tree:
            _check_rectangular(t)


def _precision(notations: list[tuple[str, int]], values: np.ndarray, *, wrapper: str, dtype: str | None,
               printed_precision: int | None) -> tuple[PrintStyle, np.ndarray]:
    """The print style, and half a unit in the last printed digit of each element (``half_unit``)."""
    fixed_decimals, mantissa, kinds = 0, 0, []
    for num, pad in notations:
        low = num.lower().lstrip("+-")
        if low in ("nan", "inf"):
            kinds.append("special")
        elif "e" in low:
            kinds.append("scientific")
            mant = low.split("e")[0]
            mantissa = max(mantissa, len(mant.split(".")[1]) if "." in mant else 0)
        elif "." in low:
            kinds.append("fixed")
            fixed_decimals = max(fixed_decimals, len(low.split(".")[1]) + pad)
        else:
            kinds.append("integer")
    if "fixed" in kinds and printed_precision is not None:
        fixed_decimals = max(fixed_decimals, printed_precision)
    half = []
    for kind, value in zip(kinds, values.reshape(-1)):
        if kind == "fixed":
            half.append(float(half_unit(value, decimals=fixed_decimals)))
        elif kind == "scientific":
            half.append(float(half_unit(value, significant=mantissa + 1)))
        else:  # integers are exact; nan/inf have no precision
            half.append(float(half_unit(value)))
    if "scientific" in kinds:
        style = PrintStyle("scientific", mantissa, wrapper, dtype)
    elif "fixed" in kinds:
        style = PrintStyle("fixed", fixed_decimals, wrapper, dtype)
    else:
        style = PrintStyle("integer", 0, wrapper, dtype)
    return style, np.array(half, dtype=np.float64).reshape(values.shape)


def format_like(values: np.ndarray, style: PrintStyle) -> str:
    """``values`` printed the way the key printed its answer (same notation, digits, wrapper)."""
    values = np.asarray(values, dtype=np.float64)
    notation, decimals = style.notation, style.decimals
    if notation == "integer" and not np.all(np.isfinite(values) & (values == np.round(values))):
        notation, decimals = "fixed", 8  # the key printed integers but the answer is not one
    separator = ", " if style.wrapper in ("array", "list") else " "
    if notation == "integer":
        text = np.array2string(values.astype(np.int64), separator=separator) if values.ndim else str(int(values))
    elif notation == "scientific":
        def fmt(x: np.floating | float) -> str:
            return np.format_float_scientific(x, precision=decimals, unique=False, exp_digits=2)

        text = np.array2string(values, separator=separator, formatter={"float_kind": fmt}) if values.ndim \
            else fmt(float(values))
    else:
        if values.ndim:
            text = np.array2string(values, precision=decimals, separator=separator, floatmode="maxprec",
                                   suppress_small=True)
        else:
            v = float(values)
            text = f"{v:.{decimals}f}" if decimals < 16 else repr(v)  # a full repr stays a repr
    if style.wrapper == "array":
        suffix = f", dtype={style.dtype})" if style.dtype else ")"
        return f"array({text}{suffix}"
    if style.wrapper == "scalar":
        return f"np.{style.dtype or 'float64'}({text})"
    return text


def numpy_print(values: np.ndarray) -> str:
    """What ``print(values)`` shows with numpy's default print options (precision 8)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0:
        return repr(float(values))
    with np.printoptions(precision=8, floatmode="maxprec", suppress=False):
        return str(values)
