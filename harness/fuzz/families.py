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
* ``constant-column``: a column of X constant (a direction the data never varies in);
* ``near-overflow``: a row of X and the first layer's weights set so that the row's first-layer
  pre-activations are exactly +-88.72 or +-88.0 (float32's ``exp`` overflows past 88.7228) or
  +-709.78 or +-709.0 (float64's, past 709.7827): exponentials, sigmoids and softmaxes at the edge
  of the dtype's range (past it in float32 for the float64 values);
* ``binding-clip``: for a cross-entropy, the output layer's bias at the logit of the clip epsilon
  (+-16.1181: p = 1e-7 or 1 - 1e-7, Keras' clip) or at +-100 (p within e^-100 of 0 or 1: torch's
  log clamp at -100), its kernel scaled down 100-fold, so the rows' probabilities sit at the clip,
  some on each side;
* ``subnormal``: some values of the data and weights subnormal: +-1e-310 and 5e-324 (float64's; 0
  in float32) and +-1e-40 (float32's; normal in float64).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from hypothesis import strategies as st

Matrix = list[list[float]]

FLOAT32_EXACT = "float32-exact"
SATURATING = "saturating"
RELU_ZEROS = "relu-zeros"
REPEATED_ROWS = "repeated-rows"
CONSTANT_COLUMN = "constant-column"
NEAR_OVERFLOW = "near-overflow"
BINDING_CLIP = "binding-clip"
SUBNORMAL = "subnormal"
FAMILIES = (FLOAT32_EXACT, SATURATING, RELU_ZEROS, REPEATED_ROWS, CONSTANT_COLUMN, NEAR_OVERFLOW, BINDING_CLIP,
            SUBNORMAL)

SATURATING_VALUES = (8.0, 20.0, 40.0)
# just below log(max) of float32 (88.7228) and of float64 (709.7827), and a little further below
NEAR_OVERFLOW_VALUES = (88.72, 709.78, 88.0, 709.0)
# logit(1e-7) = log(1e-7 / (1 - 1e-7)): p at Keras' clip epsilon; 100: past torch's log clamp at -100
CLIP_LOGITS = (16.11809565095832, 100.0)
SUBNORMAL_VALUES = (1e-310, 1e-40, 5e-324)


def element(families: frozenset[str], *, bound: float = 2.0) -> st.SearchStrategy[float]:
    """One value of the data or of a weight: a short decimal in [-bound, bound] (shrinking towards
    0), a multiple of 1/16 with ``float32-exact``; with ``saturating`` now and then +-8, 20 or 40."""
    if FLOAT32_EXACT in families:
        plain = st.integers(-int(bound * 16), int(bound * 16)).map(lambda k: k / 16)
    else:
        plain = st.integers(-int(bound * 100), int(bound * 100)).map(lambda k: k / 100)
    special = [values for family, values in ((SATURATING, SATURATING_VALUES), (SUBNORMAL, SUBNORMAL_VALUES))
               if family in families]
    if not special:
        return plain
    return st.one_of(plain, *(_signed(values) for values in special))


def _signed(values: tuple[float, ...]) -> st.SearchStrategy[float]:
    return st.tuples(st.sampled_from(values), st.booleans()).map(lambda t: -t[0] if t[1] else t[0])


def matrix(draw: st.DrawFn, rows: int, columns: int, families: frozenset[str], *,
           bound: float = 2.0) -> Matrix:
    return draw(_matrices(rows, columns, families, bound))


@functools.cache
def _matrices(rows: int, columns: int, families: frozenset[str], bound: float) -> st.SearchStrategy[Matrix]:
    """The strategy of ``matrix``, built once per shape, families and bound: hypothesis validates a
    strategy object the first time it draws from it, a sixth of a draw's CPU when built anew each
    time; the same values are drawn."""
    value = element(families, bound=bound)
    return st.lists(st.lists(value, min_size=columns, max_size=columns), min_size=rows, max_size=rows)


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


def near_overflow(draw: st.DrawFn, X: Matrix, layers: list[dict[str, Any]], loss: str) -> bool:
    """Row ``i`` of X made ``[v, 0, ...]`` and the first layer's kernel row 0 ones, its other rows
    untouched and its bias 0: row ``i``'s first-layer pre-activations are exactly ``v``, near the
    overflow of ``exp`` (``NEAR_OVERFLOW_VALUES``, either sign)."""
    v = draw(_signed(NEAR_OVERFLOW_VALUES))
    i = draw(st.integers(0, len(X) - 1))
    X[i] = [v] + [0.0] * (len(X[i]) - 1)
    first = layers[0]
    first["kernel"][0] = [1.0] * first["units"]
    if "bias" in first:
        first["bias"] = [0.0] * first["units"]
    return True


def binding_clip(draw: st.DrawFn, X: Matrix, layers: list[dict[str, Any]], loss: str) -> bool:
    """For a cross-entropy: the output layer's bias at a clip logit (``CLIP_LOGITS``, either sign;
    the first unit's for a softmax, the others' 0) and its kernel scaled down 100-fold (rounded to
    short decimals), so every row's probability sits at the clip."""
    if loss == "mse":
        return False
    last = layers[-1]
    logit = draw(_signed(CLIP_LOGITS))
    units = last["units"]
    last.pop("use_bias", None)
    last["bias"] = [logit] + [0.0] * (units - 1) if last["activation"] == "softmax" else [logit] * units
    last["kernel"] = [[round(w / 100, 4) for w in row] for row in last["kernel"]]
    return True


# families that edit the drawn X in place, in this order (relu-zeros last: its zero row survives)
DATA_EDITS: dict[str, Callable[[st.DrawFn, Matrix], bool]] = {
    REPEATED_ROWS: repeated_rows, CONSTANT_COLUMN: constant_column, RELU_ZEROS: relu_zeros,
}
# families that edit the drawn layers (and X) once they are drawn, for the example's loss, in this order
LAYER_EDITS: dict[str, Callable[[st.DrawFn, Matrix, list[dict[str, Any]], str], bool]] = {
    NEAR_OVERFLOW: near_overflow, BINDING_CLIP: binding_clip,
}
