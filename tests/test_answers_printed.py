"""numpy's printed output: values, the half-unit each printed digit allows, and printing back alike."""
from __future__ import annotations

import numpy as np
import pytest

from harness.judge.printed import PrintedError, format_like, half_unit, numpy_print, parse_printed

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
}


@pytest.mark.parametrize("text,values,half,notation", list(STYLES.values()), ids=list(STYLES))
def test_printed_values_and_precision(text, values, half, notation):
    printed = parse_printed(text)
    np.testing.assert_array_equal(printed.values, np.array(values, dtype=np.float64))
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
}


@pytest.mark.parametrize("text", list(BAD.values()), ids=list(BAD))
def test_unparseable_printed_output_is_an_error(text):
    with pytest.raises(PrintedError):
        parse_printed(text)
