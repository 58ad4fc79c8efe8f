"""Numbers as numpy (or Python) printed them: values, and the precision each printed digit claims.

Accepted styles (pasted as a TOML string, or written as TOML numbers)::

    [[0.99966465]           numpy print(): rows on lines, elements padded with spaces
     [0.99752738]]
    [1.6 ]                  a trimmed element (zeros dropped, the space keeps the width)
    array([[0.01],          repr() of an array, commas, optional dtype=float32; array(1.5) for 0-d
    [0.73]])
    np.float64(203.1757236001885)    numpy 2 scalar repr
    9.82e-01                scientific notation
    -3.1999999999999993     Python float repr
    [0.5265, 0.4735]        a Python list (its elements may be numpy scalars, np.float64(0.5265))
    [[1], [8]]              integers: exact
    [[nan]                  nan, inf, -inf (a diverged run)
     [-inf]]

A printed training log, Keras' ``hist.history`` as ``print(hist.history)`` shows it, is read by
``parse_history``: a Python dict of lists ``{'loss': [0.6931, 0.5432], 'val_loss': [...]}``
(keys quoted with ' or ", each value one printed list read as above, with its own digits).

and nothing else (``PrintedError``): numbers as numpy or Python print them (``1.``, ``0.5``, ``-6``,
``9.82e-01``, ``1e-05``; not ``.5``, ``1e5``, ``1E+05``, ``007`` or ``NaN``); print() separates elements and
rows with whitespace only, a list or repr() with exactly one comma (whitespace around it is free), one style
for the whole text; brackets balanced, no empty array, rows of equal length; nothing before or after.

Half a unit in the last printed digit, per element (``half_unit``, the one digits-to-tolerance
rule: the scenario format's ``[[lab_values]]`` ``decimals`` / ``significant`` use it too):

* fixed notation: ``0.5 * 10**-d`` where ``d`` is the array's number of decimals. numpy
  prints every element of one array to the same width and trims trailing zeros, padding
  with spaces: ``0.5000211 `` printed among 8-decimal numbers is ``0.50002110``. A trimmed
  element therefore takes the array's precision: the digits it shows plus its padding (the
  spaces before the ``]`` or ``,`` that follows it; between two numbers of a print() row the
  spaces also hold the next element's left padding, ``[12.5   3.25]``, and do not count), and
  at least the largest number of decimals shown in the array. When every element is
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

_SPACE = " \t\r\n"
# A number as numpy or Python prints it: scientific with one digit before the point and a signed exponent of two
# or more digits (``9.82e-01``, ``1.e+00``, ``1e-05``), fixed (``0.5``, ``1.``, ``-6.``), an integer, ``nan``,
# ``inf``, ``-inf`` (``+`` with numpy's sign='+'). No leading zeros, no ``.5``, no ``1e5``, no ``NaN``.
_NUMBER = re.compile(r"[-+]?(?:\d(?:\.\d*)?e[-+]\d{2,}|(?:0|[1-9]\d*)(?:\.\d*)?|inf)|\+?nan")
_STARTS_NUMBER = frozenset("+-0123456789in")
_ENDS_NUMBER = frozenset(_SPACE + ",])")
_SCALAR_DTYPES = "float16|float32|float64|u?int8|u?int16|u?int32|u?int64"
_SCALAR_OPEN = re.compile(rf"np\.(?P<dtype>{_SCALAR_DTYPES})\(")
_ARRAY_DTYPE = re.compile(rf",[{_SPACE}]*dtype=(?P<dtype>{_SCALAR_DTYPES}|float128|longdouble)\)")


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
    tree, notations, wrapper, dtype = _Reader(text.strip()).read()
    values = np.array(tree, dtype=np.float64)
    style, half = _precision(notations, values, wrapper=wrapper, dtype=dtype, printed_precision=printed_precision)
    return Printed(values=values, half_unit=half, style=style, text=text)


_KEY = re.compile(r"""[{,][ \t\r\n]*(['"])([A-Za-z_][A-Za-z0-9_]*)\1[ \t\r\n]*:[ \t\r\n]*""")


def parse_history(text: str, *, printed_precision: int | None = None) -> dict[str, Printed]:
    """A printed dict of lists (Keras' ``hist.history``): key -> each list as printed (``parse_printed``)."""
    body = text.strip()
    if not body.startswith("{") or not body.endswith("}"):
        raise PrintedError("a printed dict of lists, {'loss': [...], ...}")
    history: dict[str, Printed] = {}
    pos = 0
    while pos < len(body) - 1:
        key = _KEY.match(body, pos)
        if key is None:
            rest = body[pos:pos + 20]
            raise PrintedError(f"a quoted key and ':' (as print(hist.history) shows them), found {rest!r}")
        name, start = key[2], key.end()
        if name in history:
            raise PrintedError(f"the key {name!r} twice")
        if not body.startswith("[", start):
            raise PrintedError(f"a list of numbers for {name!r}")
        depth, end = 0, start
        for end in range(start, len(body)):
            depth += {"[": 1, "]": -1}.get(body[end], 0)
            if depth == 0:
                break
        if depth != 0:
            raise PrintedError(f"unbalanced '[' in {name!r}")
        try:
            history[name] = parse_printed(body[start:end + 1], printed_precision=printed_precision)
        except PrintedError as exc:
            raise PrintedError(f"{name!r}: {exc}") from None
        if history[name].values.ndim != 1:
            raise PrintedError(f"{name!r}: one list of numbers, one per epoch")
        pos = end + 1
        while pos < len(body) and body[pos] in _SPACE:
            pos += 1
        if body[pos] not in ",}":
            raise PrintedError(f"',' or '}}' after {name!r}'s list, found {body[pos:pos + 20]!r}")
        if body[pos] == "," and body[pos + 1:].strip() == "}":
            break  # a trailing comma, as a dict literal may have
    if not history:
        raise PrintedError("at least one key and its list")
    return history


def _toml_to_text(value: object) -> str:
    if isinstance(value, bool):
        raise PrintedError(f"a number, not {value!r}")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_to_text(v) for v in value) + "]"
    raise PrintedError(f"numbers or printed text, not {type(value).__name__}")


class _Reader:
    """Reads exactly what numpy or Python prints, one pass, and refuses anything else.

    ``text`` is one of::

        NUMBER                                   Python float/int repr, str() of a numpy scalar or 0-d array
        np.DTYPE(NUMBER)                         numpy 2 scalar repr
        ARRAY                                    print(): elements separated by whitespace, no comma
        LIST                                     Python list: one comma between elements (and rows); the
                                                 elements may be numpy scalars, np.float64(0.5)
        array(ARRAY or LIST or NUMBER[, dtype=DTYPE])    repr(): commas, as a list (`` NUMBER`` with sign=' ')

    Whitespace (spaces, newlines) may surround elements and commas; one style of separator for the
    whole text; brackets balanced; nothing before or after.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.commas: bool | None = None  # the separator style, once a separator was seen
        self.in_array_repr = False
        self.notations: list[tuple[str, int]] = []
        self.scalar_dtypes: list[str | None] = []  # per element: np.DTYPE(...) or None (bare)

    def read(self) -> tuple[object, list[tuple[str, int]], str, str | None]:
        """The nested values, (number text, padding) per element, the wrapper and the dtype."""
        if not self.text:
            raise PrintedError("no number")
        scalar = _SCALAR_OPEN.match(self.text)
        if scalar:
            self.pos = scalar.end()
            root: object = self._number()
            self._expect(")", "a single number in np.DTYPE(...)")
            wrapper, dtype = "scalar", scalar["dtype"]
        elif self.text.startswith("array("):
            self.pos, self.commas, self.in_array_repr = len("array("), True, True
            if self.text.startswith(" ", self.pos) and _NUMBER.match(self.text, self.pos + 1):
                self.pos += 1  # a 0-d array with sign=' ': array( 0.5)
            root = self._value()
            tail = _ARRAY_DTYPE.match(self.text, self.pos)
            if tail:
                self.pos = tail.end()
            else:
                self._expect(")", "array(...) to end with ')' or ', dtype=...)'")
            wrapper, dtype = "array", (tail["dtype"] if tail else None)
        else:
            root = self._value()
            dtypes = set(self.scalar_dtypes)
            if self.commas is False and dtypes != {None}:
                raise PrintedError("numpy scalars, np.DTYPE(...), in a list need commas between them")
            wrapper = "list" if self.commas or dtypes != {None} else "plain"
            dtype = dtypes.pop() if len(dtypes) == 1 else None
        if self.text.startswith("]", self.pos):
            raise PrintedError("unbalanced ']'")
        if self.pos != len(self.text):
            raise PrintedError(f"one number or one array, then nothing: found {self._rest()!r} after it")
        _check_rectangular(root)
        return root, self.notations, wrapper, dtype

    def _rest(self) -> str:
        rest = self.text[self.pos:]
        return rest if len(rest) <= 20 else rest[:20] + "..."

    def _expect(self, char: str, what: str) -> None:
        if not self.text.startswith(char, self.pos):
            raise PrintedError(f"expected {what}, found {self._rest()!r}" if self._rest() else f"expected {what}")
        self.pos += len(char)

    def _skip_space(self) -> bool:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1
        return self.pos > start

    def _separator(self, comma: bool) -> None:
        if self.commas is None:
            self.commas = comma
        elif self.commas != comma:
            if self.in_array_repr:
                raise PrintedError("array(...) separates its elements with commas: found elements without one")
            raise PrintedError("mixed separators: print() separates elements with whitespace only, a list or "
                               "repr() with one comma")

    def _value(self) -> object:
        if self.text.startswith("[", self.pos):
            return self._array()
        scalar = _SCALAR_OPEN.match(self.text, self.pos)
        if scalar and not self.in_array_repr:  # a numpy scalar in a Python list: [np.float64(0.5), ...]
            self.pos = scalar.end()
            number = self._number()
            self._expect(")", "a single number in np.DTYPE(...)")
            self.scalar_dtypes.append(scalar["dtype"])
            return number
        number = self._number()
        self.scalar_dtypes.append(None)
        return number

    def _number(self) -> float:
        m = _NUMBER.match(self.text, self.pos)
        end = m.end() if m else self.pos
        if m is None or (end < len(self.text) and self.text[end] not in _ENDS_NUMBER):
            found = self._rest()
            if not found or found[0] in "],":
                raise PrintedError(f"a number expected, found {found!r}" if found else "a number expected")
            raise PrintedError(f"cannot read {found!r} as a printed number")
        self.pos = end
        spaces = end
        while spaces < len(self.text) and self.text[spaces] == " ":
            spaces += 1
        following = self.text[spaces:spaces + 1]
        # numpy pads a trimmed element on the right to the array's decimals, and the integer part of the next
        # element on the left to the array's widest: between two numbers (print()) the spaces are the separator
        # and both paddings, which cannot be told apart; before ']' or ',' (or the end) they are this one's
        pad = 0 if following in _STARTS_NUMBER else spaces - end
        self.notations.append((m[0], pad))
        return float(m[0])

    def _array(self) -> list[object]:
        self.pos += 1  # '['
        items: list[object] = []
        self._skip_space()
        if self.text.startswith("]", self.pos):
            raise PrintedError("an empty array: no number")
        while True:
            if self.text.startswith(",", self.pos):
                raise PrintedError("a comma where a number or '[' should be (a doubled comma, or one after '[')")
            if self.text.startswith("]", self.pos):
                raise PrintedError("a comma before ']'")
            if self.pos >= len(self.text):
                raise PrintedError("unbalanced '['")
            items.append(self._value())
            spaced = self._skip_space()
            if self.pos >= len(self.text):
                raise PrintedError("unbalanced '['")
            char = self.text[self.pos]
            if char == "]":
                self.pos += 1
                return items
            if char == ",":
                self.pos += 1
                self._separator(comma=True)
                self._skip_space()
            elif spaced:
                self._separator(comma=False)
            else:
                raise PrintedError(f"no space or comma before {self._rest()!r}")


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
    if notation == "integer" and not np.all(np.isfinite(values) & (values == np.round(values))
                                            & (np.abs(values) < 2.0 ** 63)):
        notation, decimals = "fixed", 8  # the key printed integers but the answer is not one (or not an int64)
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
