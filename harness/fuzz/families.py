"""Named edge-value families for the data and the initial weights: each turns the plain draw of
short decimals into values where implementations are known to part ways. An example records the
families that changed it (a family that cannot apply, e.g. repeated rows on one row, is not
recorded).

* ``float32-exact``: every value a multiple of 1/16 in [-4, 4], exact in float32 and float64
  (the data's and the weights' rounding to float32 changes nothing);
* ``saturating``: some inputs and weights of magnitude 8, 20 or 40, so that sigmoid and tanh
  saturate (their derivatives round to 0 in float32) and exponentials grow large;
* ``relu-zeros``: a row of zeros and first-layer biases of 0: that row's pre-activations are
  exactly 0 at step 0 (ReLU'(0) is a convention);
* ``repeated-rows``: a row of X repeated (a batch's gradient sums equal terms);
* ``constant-column``: a column of X constant (a direction the data never varies in).
"""
from __future__ import annotations

from typing import Callable

from hypothesis import strategies as st

Matrix = list[list[float]]

FLOAT32_EXACT = "float32-exact"
SATURATING = "saturating"
RELU_ZEROS = "relu-zeros"
REPEATED_ROWS = "repeated-rows"
CONSTANT_COLUMN = "constant-column"
FAMILIES = (FLOAT32_EXACT, SATURATING, RELU_ZEROS, REPEATED_ROWS, CONSTANT_COLUMN)

SATURATING_VALUES = (8.0, 20.0, 40.0)


def element(families: frozenset[str], *, bound: float = 2.0) -> st.SearchStrategy[float]:
    """One value of the data or of a weight: a short decimal in [-bound, bound] (shrinking towards
    0), a multiple of 1/16 with ``float32-exact``; with ``saturating`` now and then +-8, 20 or 40."""
    if FLOAT32_EXACT in families:
        plain = st.integers(-int(bound * 16), int(bound * 16)).map(lambda k: k / 16)
    else:
        plain = st.integers(-int(bound * 100), int(bound * 100)).map(lambda k: k / 100)
    if SATURATING not in families:
        return plain
    big = st.tuples(st.sampled_from(SATURATING_VALUES), st.booleans()).map(lambda t: -t[0] if t[1] else t[0])
    return st.one_of(plain, big)


def matrix(draw: st.DrawFn, rows: int, columns: int, families: frozenset[str], *,
           bound: float = 2.0) -> Matrix:
    value = element(families, bound=bound)
    return draw(st.lists(st.lists(value, min_size=columns, max_size=columns), min_size=rows, max_size=rows))


def relu_zeros(draw: st.DrawFn, X: Matrix) -> bool:
    """Row ``i`` of X set to zeros (the caller zeroes the first layer's bias); True when applied."""
    i = draw(st.integers(0, len(X) - 1))
    X[i] = [0.0] * len(X[i])
    return True


def repeated_rows(draw: st.DrawFn, X: Matrix) -> bool:
    if len(X) < 2:
        return False
    i, j = draw(st.integers(0, len(X) - 1)), draw(st.integers(0, len(X) - 1))
    if i == j:
        j = (i + 1) % len(X)
    X[j] = list(X[i])
    return True


def constant_column(draw: st.DrawFn, X: Matrix) -> bool:
    if len(X) < 2:
        return False
    c = draw(st.integers(0, len(X[0]) - 1))
    for row in X:
        row[c] = X[0][c]
    return True


# families that edit the drawn X in place, in this order (relu-zeros last: its zero row survives)
DATA_EDITS: dict[str, Callable[[st.DrawFn, Matrix], bool]] = {
    REPEATED_ROWS: repeated_rows, CONSTANT_COLUMN: constant_column, RELU_ZEROS: relu_zeros,
}
