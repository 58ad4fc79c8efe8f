"""numpy's printed output: values, the half-unit each printed digit allows, and printing back alike."""
from __future__ import annotations

import functools
import re
import string
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from harness.answers.verdicts import numpy_text
from harness.spec.printed import PrintedError, format_like, half_unit, numpy_print, parse_printed

# text -> (values, half-unit per element, notation)
STYLES = {
    "print-column": ("[[0.99966465]\n [0.99752738]]", [[0.99966465], [0.99752738]], [[5e-9], [5e-9]], "fixed"),
    "trimmed-padded": ("[1.6 ]", [1.6], [5e-3], "fixed"),
    "trimmed-among-8-decimals": ("[[0.24985576]\n [0.5000211 ]\n [0.75018656]]",
                                 [[0.24985576], [0.5000211], [0.75018656]], [[5e-9]] * 3, "fixed"),
    "trimmed-to-the-point": ("[[-6.        ]\n [-4.26666667]]", [[-6.0], [-4.26666667]], [[5e-9]] * 2, "fixed"),
    "array-repr-2-decimals": ("array([[0.01],\n[0.73],\n[1. ]])", [[0.01], [0.73], [1.0]], [[5e-3]] * 3, "fixed"),
    "array-repr-float32": ("array([[0.25250572, 0.75124925],\n       [0.49919188, 0.50062895]], dtype=float32)",
                           [[0.25250572, 0.75124925], [0.49919188, 0.50062895]], [[5e-9] * 2] * 2, "fixed"),
    "np-float64": ("np.float64(203.1757236001885)", 203.1757236001885, 5e-14, "fixed"),
    "scientific": ("9.82e-01", 0.982, 5e-4, "scientific"),
    "scientific-array": ("array([[9.82e-01, 1.80e-02],\n[6.14e-06, 1.00e+00]])", [[0.982, 0.018], [6.14e-6, 1.0]],
                         [[5e-4, 5e-5], [5e-9, 5e-3]], "scientific"),
    "python-repr": ("-3.1999999999999993", -3.1999999999999993, 5e-17, "fixed"),
    "python-list": ("[0.5265, 0.4735]", [0.5265, 0.4735], [5e-5, 5e-5], "fixed"),
    "integers": ("[[1]\n [8]]", [[1], [8]], [[0.0], [0.0]], "integer"),
    "integer-repr": ("array([[-5, -9],\n[ 1, 5]])", [[-5, -9], [1, 5]], [[0.0] * 2] * 2, "integer"),
    "toml-numbers": ([[3], [3]], [[3], [3]], [[0.0], [0.0]], "integer"),
    "toml-floats": ([0.99, 3.0], [0.99, 3.0], [5e-3, 5e-3], "fixed"),
    "print-row-left-padding": ("[12.5   3.25]", [12.5, 3.25], [5e-3, 5e-3], "fixed"),  # ' 3.25' is padded left
    "print-row-precision-8": ("[12.5         3.12345679]", [12.5, 3.12345679], [5e-9, 5e-9], "fixed"),
    "0-d-array-repr": ("array(1.5)", 1.5, 5e-2, "fixed"),
    "scientific-zero-padded": ("[1.50e-05 2.25e+00]", [1.5e-5, 2.25], [5e-8, 5e-3], "scientific"),
    "diverged": ("[[nan]\n [-inf]]", [[np.nan], [-np.inf]], [[0.0], [0.0]], "integer"),
    "sign-plus": ("[+nan +1.5 -inf +inf]", [np.nan, 1.5, -np.inf, np.inf], [0.0, 5e-2, 0.0, 0.0], "fixed"),
    "list-of-numpy-scalars": ("[np.float64(0.5265), np.float64(0.4735)]", [0.5265, 0.4735], [5e-5, 5e-5], "fixed"),
    "repr-wrapped-with-dtype": ("array([[ 1.5  ,\n         2.25 ,\n         3.125],\n       [ 4.   ,\n        -5.5  ,\n"
                                "         6.75 ]],\n      dtype=float32)",  # linewidth=12
                                [[1.5, 2.25, 3.125], [4.0, -5.5, 6.75]], [[5e-4] * 3] * 2, "fixed"),
}


@pytest.mark.parametrize("text,values,half,notation", list(STYLES.values()), ids=list(STYLES))
def test_printed_values_and_precision(text, values, half, notation):
    printed = parse_printed(text)
    np.testing.assert_array_equal(printed.values, np.array(values, dtype=np.float64))  # nan equals nan here
    np.testing.assert_allclose(printed.half_unit, np.array(half), rtol=1e-12)
    assert printed.style.notation == notation


def test_half_a_unit_in_the_last_digit():
    """The one digits-to-tolerance rule: fixed decimals, significant digits per element (0 as 10**0), integers."""
    values = np.array([0.982, -0.018, 6.14e-6, 1.0, 0.0, 250.0])
    np.testing.assert_array_equal(half_unit(values, decimals=2), np.full(6, 5e-3))
    np.testing.assert_allclose(half_unit(values, significant=3), [5e-4, 5e-5, 5e-9, 5e-3, 5e-3, 0.5], rtol=1e-12)
    np.testing.assert_array_equal(half_unit(values), np.zeros(6))
    with pytest.raises(ValueError):
        half_unit(values, decimals=2, significant=3)


def test_float32_dtype_and_scalar_wrappers_are_kept():
    assert parse_printed("array([1.5], dtype=float32)").style.dtype == "float32"
    assert parse_printed("np.float64(1.25)").style.wrapper == "scalar"
    assert parse_printed("[np.float32(0.5), np.float32(0.25)]").style.dtype == "float32"
    assert parse_printed("[np.float32(0.5), 0.25]").style.dtype is None


def test_all_trimmed_elements_are_lenient_unless_the_print_precision_is_given():
    assert float(parse_printed("[[1.]\n [1.]]").half_unit.max()) == 0.5
    assert float(parse_printed("[[1.]\n [1.]]", printed_precision=8).half_unit.max()) == 5e-9


@pytest.mark.parametrize("text", [STYLES[k][0] for k in ("print-column", "array-repr-2-decimals", "scientific-array",
                                                          "python-list", "integers", "array-repr-float32")],
                         ids=["print-column", "array-repr", "scientific", "python-list", "integers", "float32"])
def test_format_like_prints_the_way_the_key_printed(text):
    printed = parse_printed(text)
    again = parse_printed(format_like(printed.values, printed.style))
    np.testing.assert_array_equal(again.values, printed.values)
    assert again.style.notation == printed.style.notation
    assert again.style.wrapper == printed.style.wrapper


def test_numpy_print_is_numpys_default_print():
    value = np.array([[1.6], [1.4266666666]])
    assert numpy_print(value) == str(value)


BAD = {
    "ragged-rows": "[[1, 2], [3]]",
    "numbers-mixed-with-rows": "[[1], 2]",
    "words": "about 0.5",
    "unbalanced": "[[1, 2]",
    "two-arrays": "[1] [2]",
    "empty": "",
    "empty-array": "[]",
    "doubled-comma": "array([1,,2])",
    "doubled-comma-between-rows": "[[3],,[3]]",
    "comma-space-comma": "[1, , 2]",
    "trailing-comma": "[1, 2,]",
    "leading-comma": "[,1]",
    "comma-in-print": "[1 2, 3]",
    "print-gap-in-list": "[1, 2 3]",
    "rows-without-commas-in-a-list": "[[1, 2]\n [3, 4]]",
    "print-inside-array-repr": "array([1 2])",
    "no-separator": "[1.-2.]",
    "rows-run-together": "[[1][2]]",
    "unmatched-close": "[1, 2]]",
    "close-only": "]",
    "unclosed-repr": "array([1, 2]",
    "text-after-repr": "array([1, 2]) x",
    "text-before": "x [1, 2]",
    "letters-between": "[1.5 x 2.5]",
    "array-in-scalar": "np.float64([1])",
    "unknown-scalar": "np.float65(1.5)",
    "unknown-dtype": "array([1.], dtype=floaty32)",
    "space-in-wrapper": "np.float64(1.5 )",
    "tuple": "(1, 2)",
    "two-numbers": "1 2",
    "leading-point": ".5",
    "leading-zero": "[01 2]",
    "unsigned-exponent": "1e5",
    "capital-exponent": "1E+05",
    "two-digits-before-the-exponent": "12.5e-05",
    "capital-nan": "NaN",
    "negative-nan": "-nan",
    "numpy-scalars-without-commas": "[np.float64(0.5) np.float64(0.25)]",
    "numpy-scalar-in-array-repr": "array([np.float64(0.5)])",
    "summarised": "[0. 1. 2. ... 7. 8. 9.]",
}


@pytest.mark.parametrize("text", list(BAD.values()), ids=list(BAD))
def test_unparseable_printed_output_is_an_error(text):
    with pytest.raises(PrintedError):
        parse_printed(text)


# --- property tests: everything numpy (or Python) prints reads back; mutations of it are refused ---

# a number in valid printed text (not the 32 of dtype=int32)
_A_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:nan|inf|\d[\d.]*(?:e[-+]\d+)?)(?![\w.])")


def _float_elements(width: int) -> dict[str, st.SearchStrategy[float]]:
    """Element strategies for one array: any floats, a few decimals (numpy trims their zeros and pads them),
    magnitudes from 1e-30 to 1e30 (scientific, or suppressed to 0.), special values, or all of them mixed."""
    def as_width(x: float) -> float:
        return float(np.float32(x)) if width == 32 else x

    tiny, huge = as_width(1e-30), as_width(1e30)
    families = {
        "any": st.floats(-1e6, 1e6, width=width, allow_subnormal=False),
        "decimals": st.tuples(st.integers(-10**5, 10**5), st.sampled_from([1, 2, 4, 8, 10, 100, 1000])).map(
            lambda t: as_width(t[0] / t[1])),
        "magnitudes": st.tuples(st.floats(min_value=tiny, max_value=huge, width=width), st.booleans()).map(
            lambda t: -t[0] if t[1] else t[0]),
        "special": st.sampled_from([0.0, -0.0, 1.0, np.nan, np.inf, -np.inf]),
    }
    families["mixed"] = st.one_of(*families.values())
    return families


_ELEMENTS: dict[str, dict[str, st.SearchStrategy[float]] | st.SearchStrategy[int]] = {
    "float64": _float_elements(64),
    "float32": _float_elements(32),
    "int64": st.integers(-2**53, 2**53),  # read as float64: exact up to 2**53
    "int32": st.integers(-2**31, 2**31 - 1),
}
_HOW = ["print", "repr", "array2string", "python"]


# the strategies printed_texts draws from, built once (hypothesis validates each strategy object
# the first time it draws from it: building them anew for every example was a sixth of this file's CPU)
_DTYPES = st.sampled_from(["float64", "float64", "float32", "float32", "int64", "int32"])
_FAMILIES = {dtype: st.sampled_from(sorted(elements.items())) for dtype, elements in _ELEMENTS.items()
             if isinstance(elements, dict)}
_PRECISION, _LINEWIDTH = st.integers(0, 17), st.integers(5, 100)
_FLOATMODE = st.sampled_from(["fixed", "unique", "maxprec", "maxprec_equal"])
_SIGN = st.sampled_from(["-", "+", " "])


@functools.cache
def _shapes(min_dims: int) -> st.SearchStrategy[tuple[int, ...]]:
    return hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=1, max_side=3)


@functools.cache
def _arrays(dtype: str, shape: tuple[int, ...], elements: st.SearchStrategy[Any]) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.dtype(dtype), shape, elements=elements)


@functools.cache
def _styles(styles: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.sampled_from(list(styles))


@st.composite
def printed_texts(draw: st.DrawFn, min_dims: int = 0, min_size: int = 1,
                  how: tuple[str, ...] = ()) -> tuple[np.ndarray, str, str]:
    """(array, the text numpy or Python printed for it, how): str/print, repr, array2string or a Python
    list/float repr (``tolist``), numpy scalars' repr for 0-d and a Python list of them for 1-d, at any
    print options."""
    dtype = draw(_DTYPES)
    shape = draw(_shapes(min_dims))
    assume(int(np.prod(shape)) >= min_size)
    elements = _ELEMENTS[dtype]
    if isinstance(elements, dict):
        elements = draw(_FAMILIES[dtype])[1]
    array = draw(_arrays(dtype, shape, elements))
    styles = list(how) or _HOW + {0: ["scalar"], 1: ["scalar-list"]}.get(array.ndim, [])
    style = draw(_styles(tuple(styles)))
    options = {"precision": draw(_PRECISION), "floatmode": draw(_FLOATMODE), "suppress": draw(st.booleans()),
               "linewidth": draw(_LINEWIDTH), "sign": draw(_SIGN)}
    with np.printoptions(**options):
        if style == "print":
            text = str(array)
        elif style == "repr":
            text = repr(array)
        elif style == "scalar":
            text = repr(array[()])  # np.float64(...), np.float32(...), np.int64(...)
        elif style == "python":
            text = repr(array.tolist())
        elif style == "scalar-list":
            text = repr(list(array))  # [np.float64(0.5), np.float64(0.25)]
        else:
            text = np.array2string(array, precision=options["precision"], floatmode=options["floatmode"],
                                   suppress_small=options["suppress"], max_line_width=options["linewidth"],
                                   sign=options["sign"])
    return array, text, style


@settings(max_examples=400, deadline=None, database=None)
@given(printed_texts())
def test_everything_numpy_prints_reads_back_within_the_printed_precision(case):
    array, text, _ = case
    printed = parse_printed(text)
    assert printed.values.shape == array.shape
    original, read = array.astype(np.float64), printed.values
    np.testing.assert_array_equal(np.isnan(read), np.isnan(original))
    np.testing.assert_array_equal(read[np.isinf(original)], original[np.isinf(original)])
    if array.dtype.kind == "i":
        np.testing.assert_array_equal(read, original)
        assert not printed.half_unit.any()
        return
    finite = np.isfinite(original)
    allowance = printed.half_unit * (1 + 1e-9) + 4 * np.spacing(np.abs(original))  # + reading decimal into binary
    if array.dtype == np.float32:  # numpy prints float32's shortest repr: half a float32 ulp from the value
        allowance = allowance + np.spacing(np.abs(array)).astype(np.float64) / 2
    assert np.all(np.abs(read[finite] - original[finite]) <= allowance[finite]), (read, printed.half_unit)


def _insert(text: str, at: int, what: str) -> str:
    return text[:at] + what + text[at:]


@settings(max_examples=200, deadline=None, database=None)
@given(printed_texts(min_dims=1, how=("print", "repr", "array2string", "python")), st.data())
def test_a_dropped_or_extra_bracket_is_refused(case, data):
    _, text, _ = case
    if data.draw(st.booleans(), label="drop"):
        positions = [i for i, c in enumerate(text) if c in "[]"]
        at = data.draw(st.sampled_from(positions), label="at")
        mutated = text[:at] + text[at + 1:]
    else:
        at = data.draw(st.integers(0, len(text)), label="at")
        mutated = _insert(text, at, data.draw(st.sampled_from("[]"), label="bracket"))
    with pytest.raises(PrintedError):
        parse_printed(mutated)


@settings(max_examples=150, deadline=None, database=None)
@given(printed_texts(min_size=2, how=("repr", "python")), st.data())
def test_a_doubled_comma_is_refused(case, data):
    _, text, _ = case
    commas = [i for i, c in enumerate(text) if c == ","]
    at = data.draw(st.sampled_from(commas), label="at")
    spaces = data.draw(st.sampled_from(["", " ", "\n "]), label="between")
    with pytest.raises(PrintedError):
        parse_printed(_insert(text, at + 1, spaces + ","))


@settings(max_examples=150, deadline=None, database=None)
@given(printed_texts(min_size=3, how=("print", "array2string")), st.data())
def test_a_comma_in_print_output_is_refused(case, data):
    """print() separates elements with whitespace: with 3 or more elements there are 2 or more gaps,
    so one comma anywhere leaves mixed separators (or a stray comma), never a valid list."""
    _, text, _ = case
    assert "," not in text
    at = data.draw(st.integers(0, len(text)), label="at")
    with pytest.raises(PrintedError):
        parse_printed(_insert(text, at, ","))


@settings(max_examples=200, deadline=None, database=None)
@given(printed_texts(min_size=2, how=("print", "repr", "array2string", "python")), st.data())
def test_stray_letters_between_numbers_are_refused(case, data):
    _, text, _ = case
    numbers = list(_A_NUMBER.finditer(text))
    gaps = [at for a, b in zip(numbers, numbers[1:]) for at in range(a.end(), b.start() + 1)]
    at = data.draw(st.sampled_from(gaps), label="at")
    letters = data.draw(st.text(string.ascii_letters, min_size=1, max_size=4).filter(lambda w: w not in ("nan", "inf")),
                        label="letters")  # nan and inf alone between two numbers are numbers
    with pytest.raises(PrintedError):
        parse_printed(_insert(text, at, letters))


@settings(max_examples=150, deadline=None, database=None)
@given(printed_texts())
def test_format_like_prints_what_the_reader_reads(case):
    """A computed value printed the way the key printed its answer (the report's 'correct value') reads back."""
    _, text, _ = case
    printed = parse_printed(text)
    again = parse_printed(format_like(printed.values, printed.style))
    assert again.values.shape == printed.values.shape
    if printed.values.size > 1:  # one element has no separator: [0.5] is print() or a list
        assert again.style.wrapper == printed.style.wrapper


def test_a_value_beyond_int64_is_never_printed_as_a_wrapped_integer():
    """A key printing integers (or inf, whose style is integer) shows a computed 1e308 as the float it
    is, not as int64's wrapped -9223372036854775808."""
    assert format_like(np.array([[1e308]]), parse_printed("[[inf]]").style) == "[[1.e+308]]"
    assert format_like(np.array([[1e19], [3.0]]), parse_printed("[[3], [4]]").style) == "[[1.e+19],\n [3.e+00]]"
    assert format_like(np.array([[3.0]]), parse_printed("[[4]]").style) == "[[3]]"
    assert numpy_text(np.array([[1e20]]), integers=True) == "[[1.e+20]]"
