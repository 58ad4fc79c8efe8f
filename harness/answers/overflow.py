"""Intermediate overflow: a forward answer whose float64 value depends on the summation order.

``X @ w + b`` is a sum of products. When its exact value is a finite float64 but some order of
its partial sums leaves float64's range, the float value is whatever the order gives: the
BLAS kernel decides. ``[[1e308, -1e308]] @ [[1e308], [1e308]]`` is exactly 0, but its products
are +-1e616: ``inf + -inf = nan`` without a fused multiply-add (OpenBLAS' Haswell and Zen
kernels), ``fma(-1e308, 1e308, inf) = inf`` with one (SkylakeX), ``-inf`` summed the other
way. No float computation gives 0.

The rule (``docs/answer-keys.md``, "Intermediate overflow"): each element of a dense
layer's ``a @ w + b`` is summed exactly (``fractions.Fraction`` of the float64 inputs; only
the elements whose ``|a| @ |w| + |b|`` reaches half of float64's largest number are summed).
An element is **order-dependent** when its exact value rounds to a finite float64 but the sum
of its positive terms ``P`` or of its negative ones ``N`` overflows (some order of the sum then
overflows). Its possible float values, taken from the exact sums alone (never from the
kernel that happens to run):

* ``+inf`` when ``P`` overflows, ``-inf`` when ``N`` does, ``nan`` when both do;
* the exact value rounded, unless a single product overflows (then no order avoids it).

An answer is computed four times by the reference with its order-dependent elements set to
each class in turn (the exact value, nan, +inf, -inf; an element without that class takes
the first it has in that order), through the layer's activation and every later layer: the
**outcomes**. An answer element whose outcomes differ is order-dependent: an implementation's
value and the key's printed value there are judged against every outcome and match when
they match one (with no exact outcome, every non-finite class is one class: "overflow
(order-dependent)"). Elements whose outcomes agree are judged as usual. The value shown for an
order-dependent element is the first outcome (``OrderDependent.canonical``), whatever the kernel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from harness.answers.compute import network_answer
from harness.answers.questions import DenseQuestion, NetworkQuestion, Question
from harness.spec.tolerance import difference
from reference.activations import ACTIVATIONS

FLOAT_MAX = float(np.finfo(np.float64).max)
_ROUNDS_TO_INF = Fraction(2) ** 1024 - Fraction(2) ** 970  # the smallest magnitude float64 rounds to inf
CLASSES = ("exact", "nan", "inf", "-inf")
_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


@dataclass(frozen=True)
class Layer:
    w: np.ndarray
    b: np.ndarray | None  # broadcast to (n, units): a per-unit vector or the lab's per-row matrix
    activation: str
    axis: int


@dataclass(frozen=True)
class OrderDependent:
    outcomes: list[np.ndarray]  # the answer computed with the order-dependent sums set to each class
    mask: np.ndarray  # answer elements whose value depends on the summation order
    exact: list[tuple[tuple[int, ...], float, tuple[str, ...]]]  # (layer, row, unit), exact value, classes

    def reason(self) -> str:
        (layer, row, unit), value, classes = self.exact[0]
        where = f"[{row}, {unit}]" + ("" if layer == 0 else f" of layer {layer}")
        more = f" (and {len(self.exact) - 1} more)" if len(self.exact) > 1 else ""
        names = ["the exact value" if c == "exact" else c for c in classes]
        kinds = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        return (f"overflow (order-dependent): X @ w + b at {where}{more} is exactly {value!r} but overflows float64 "
                f"in some summation order, so it is {kinds} by the order the BLAS kernel sums in: one class here, "
                "for the key and for the implementations")

    def canonical(self, values: np.ndarray) -> np.ndarray:
        """``values`` with each order-dependent element set to the first outcome (the exact value where an
        order gives it, else nan, +inf, -inf in that order): what the harness shows, on every kernel."""
        values = np.asarray(values, dtype=np.float64)
        return np.where(self.mask, self.outcomes[0], values.reshape(self.mask.shape)).reshape(values.shape)

    def matches(self, values: np.ndarray, *, allowed: np.ndarray | float = 0.0) -> np.ndarray:
        """Per answer element: ``values`` there is within ``allowed`` of some outcome (the one comparison rule)."""
        values = np.asarray(values, dtype=np.float64).reshape(self.mask.shape)
        return np.any([difference(values, o) <= allowed for o in self.outcomes], axis=0)

    def nearest(self, values: np.ndarray) -> np.ndarray:
        """Per answer element: the difference from ``values`` to the nearest outcome."""
        values = np.asarray(values, dtype=np.float64).reshape(self.mask.shape)
        return np.min([difference(values, o) for o in self.outcomes], axis=0)


def layers_of(question: Question) -> tuple[np.ndarray, list[Layer]] | None:
    """The answer's input and its dense layers, for the forward kinds a sum can overflow in."""
    if isinstance(question, DenseQuestion):
        return question.X, [Layer(question.w, question.b, question.activation, question.axis)]
    if isinstance(question, NetworkQuestion):
        return question.X, [Layer(layer.kernel, layer.bias if layer.use_bias else None, layer.activation, layer.axis)
                            for layer in question.layers if layer.kernel is not None]
    return None


def order_dependence(question: Question) -> OrderDependent | None:
    """The answer's outcomes when one of its sums is order-dependent (see the module), else None."""
    found = layers_of(question)
    if found is None:
        return None
    X, layers = found
    exact: list[tuple[tuple[int, ...], float, tuple[str, ...]]] = []
    outputs = []
    for choice in CLASSES:
        a = np.asarray(X, dtype=np.float64)
        for index, layer in enumerate(layers):
            z, risky = _sums(a, layer, choice)
            if choice == "exact":
                exact += [((index, *where), value, classes) for where, (value, classes) in risky.items()]
            with np.errstate(all="ignore"):
                act = ACTIVATIONS[layer.activation]
                a = np.asarray(act.forward(z, axis=layer.axis) if act.takes_axis else act.forward(z),
                               dtype=np.float64)
        if not exact:  # the first pass found no order-dependent sum: nothing depends on the order
            return None
        outputs.append(a)
    if isinstance(question, NetworkQuestion) and question.output != "output":
        outputs = [np.asarray(network_answer(question, o), dtype=np.float64) for o in outputs]
    mask = np.any([difference(o, outputs[0]) > 0 for o in outputs[1:]], axis=0)
    if not np.any(mask):  # every order gives the same answer: nothing to say
        return None
    return OrderDependent(outcomes=outputs, mask=np.asarray(mask), exact=exact)


def _sums(a: np.ndarray, layer: Layer, choice: str) -> tuple[np.ndarray, dict[tuple[int, int], tuple[float, tuple]]]:
    """``a @ w + b`` with each order-dependent element set to ``choice`` (or its first class), and those
    elements: (row, unit) -> (exact value, its classes)."""
    w = np.asarray(layer.w, dtype=np.float64)
    b = None if layer.b is None else np.broadcast_to(np.asarray(layer.b, dtype=np.float64), (a.shape[0], w.shape[1]))
    with np.errstate(all="ignore"):
        z = a @ w if b is None else a @ w + b
        bound = np.abs(a) @ np.abs(w) + (0.0 if b is None else np.abs(b))
    finite_rows = np.all(np.isfinite(a), axis=1)
    risky: dict[tuple[int, int], tuple[float, tuple]] = {}
    for row, unit in zip(*np.nonzero(~(bound < FLOAT_MAX / 2))):
        if not finite_rows[row] or (b is not None and not np.isfinite(b[row, unit])):
            continue
        terms = [Fraction(float(x)) * Fraction(float(y)) for x, y in zip(a[row], w[:, unit])]
        if b is not None:
            terms.append(Fraction(float(b[row, unit])))
        positive = sum((t for t in terms if t > 0), Fraction(0))
        negative = -sum((t for t in terms if t < 0), Fraction(0))
        try:
            value = float(positive - negative)
        except OverflowError:  # the exact value itself is beyond float64: inf is the right answer
            continue
        slack = 1 + Fraction(len(terms), 2 ** 52)  # rounding of the partial sums on the way
        up, down = positive * slack >= _ROUNDS_TO_INF, negative * slack >= _ROUNDS_TO_INF
        if not (up or down):
            continue
        classes = tuple(c for c, possible in (("exact", all(abs(t) < _ROUNDS_TO_INF for t in terms)),
                                              ("nan", up and down), ("inf", up), ("-inf", down)) if possible)
        risky[(int(row), int(unit))] = (value, classes)
        chosen = choice if choice in classes else classes[0]
        z[row, unit] = value if chosen == "exact" else _SPECIAL[chosen]
    return z, risky
