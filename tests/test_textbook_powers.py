"""The textbook check's powers of a beta (``harness.judge.textbook._power_neighbours``): ``beta**t`` as a
framework computes it is a faithfully rounded number of a dtype, so the rule takes the two numbers of
that dtype around the exact power, or the power itself when the dtype holds it. Checked here against
the exact power in rationals (``fractions.Fraction``), which the module does not use."""
from __future__ import annotations

import random
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from harness.judge.textbook import Rule, _exact_power_neighbours, _power_neighbours

_rng = random.Random(24)
BETAS = [0.0, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999999, 1e-5, 1e-300, float(np.float32(0.9)),
         float(np.float32(0.999)), *(_rng.random() for _ in range(6))]
STEPS = [*range(1, 41), 64, 333, 1000, 4000]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_powers_neighbours_are_the_dtypes_numbers_around_the_exact_power(dtype: str) -> None:
    kind = np.dtype(dtype).type
    for beta in BETAS:
        exact_beta = Decimal(beta)
        for t in STEPS:
            lower, upper = _power_neighbours(exact_beta, t, dtype)
            exact = Fraction(exact_beta) ** t
            where = f"{beta!r}**{t} in {dtype}: {lower}, {upper}"
            for end in (lower, upper):  # numbers of the dtype, as decimals
                assert Decimal(float(kind(float(end)))) == end, where
            if lower == upper:  # the dtype holds the power
                assert Fraction(lower) == exact, where
            else:  # adjacent numbers of the dtype, strictly around it
                assert Fraction(lower) < exact < Fraction(upper), where
                assert np.nextafter(kind(float(lower)), kind(np.inf)) == kind(float(upper)), where
            # the bounded (40-digit) path and the exact one in integers give the same numbers
            assert _exact_power_neighbours(exact_beta, t, kind) == (lower, upper), where


def test_a_power_the_dtype_holds_is_one_number() -> None:
    """At t = 1 the power is the beta itself, however many decimal digits it has (1e-300 has 700 or so,
    more than a fixed decimal precision keeps), and a power of 0.5 is exact in both dtypes."""
    for beta in (1e-300, 0.999, 5e-324):
        assert _power_neighbours(Decimal(beta), 1, "float64") == (Decimal(beta), Decimal(beta))
    assert _power_neighbours(Decimal(0.5), 100, "float32") == (Decimal(0.5**100),) * 2
    assert _power_neighbours(Decimal(0.0), 3, "float32") == (Decimal(0), Decimal(0))


@pytest.mark.parametrize("convention", ["keras", "torch"])
def test_the_rules_arithmetic_keeps_its_50_digits(convention: str) -> None:
    """The rule adds no rounding a float64 run could hide behind: 1 - 1e-40 is 40 nines in 50 digits,
    where Decimal's default context (28 digits, which the rule's + and * once used) rounds it to 1."""
    rule = Rule("sgd", convention, 1.0, {}, "float64")
    low, high = rule.update(1, "w", [Decimal(1)], [Decimal("1e-40")])
    assert low == high == [Decimal("0." + "9" * 40)]
