"""Optimisers: each states its update rule, in each framework's convention, as code.

An optimiser is stateful: ``step(params, grads)`` updates ``params`` (a dict of
arrays, changed in place) from ``grads`` (a dict with the same names). State
(velocities, moments) starts at zero unless the rule says otherwise.

Keras and torch give the same names to different arithmetic, so every optimiser
takes a ``convention`` and computes that framework's formula literally, in its
operation order (as read in ``keras/src/optimizers/*.py`` 3.15 and
``torch/optim/*.py`` 2.13, single-tensor path). There are three conventions and two
formula families (``formulas``):

- ``"keras"``: Keras' formulas as Keras on TensorFlow computes them, with SGD's
  ``momentum`` and Adam's ``beta``s in ``beta**t`` rounded to float32 first (``_cast``);
- ``"keras-unrounded"``: Keras' formulas with every hyper-parameter cast exactly to the
  run's dtype, as Keras on its JAX and torch backends computes them;
- ``"torch"``: torch's formulas.

``.convention`` is ``"common"`` when the formulas are the same for the given
hyper-parameters (plain SGD), otherwise the convention computed.

Dtypes: each step runs in the parameters' dtype, every hyper-parameter cast to it,
as the frameworks do, with two exceptions mirrored here: torch computes
``1 - beta**t``, ``lr / (1 - beta_1**t)`` and the ``1 - beta`` weights in Python
doubles (rounded to the parameter dtype only where they meet a tensor), and Keras'
``ops.cast(python_float, dtype)`` on the TensorFlow backend goes through a float32
tensor, so there SGD's ``momentum`` and Adam's ``beta``s in ``beta**t`` are rounded to
float32 even in a float64 run (measured on keras 3.15: ``ops.cast(0.9, "float64")`` is
``float64(float32(0.9))`` on TensorFlow, exactly 0.9 on JAX and torch). In float32 runs
``"keras"`` and ``"keras-unrounded"`` are the same arithmetic.

Rounding: torch's CPU kernels fuse some multiply-adds (``add_(x, alpha=a)``,
``addcmul_``, ``lerp_`` compute ``p + a*x`` with one rounding on an FMA-capable
CPU); NumPy rounds the product and the sum separately. The formulas are the same,
so the torch convention agrees to about an ulp per operation, not bitwise. Inside a
``tf.function`` TensorFlow's graph optimiser rewrites Keras RMSprop's
``x / sqrt(y)`` as ``x * rsqrt(y)`` (one ulp in float64, a few in float32); the
reference computes the division as Keras' source writes it (as Keras runs eagerly).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from reference.types import Array, Scalar

CONVENTIONS = ("keras", "keras-unrounded", "torch")

# Each framework's own defaults (keras.optimizers.*, torch.optim.*) by formula family (both
# Keras conventions take Keras'), under Keras' option names (torch's ``alpha`` is RMSprop
# ``rho``, ``eps`` is ``epsilon``).
DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "sgd": {
        "keras": {"momentum": 0.0, "nesterov": False},
        "torch": {"momentum": 0.0, "nesterov": False},
    },
    "adam": {
        "keras": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False},
        "torch": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8, "amsgrad": False},
    },
    "rmsprop": {
        "keras": {"rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "centered": False},
        "torch": {"rho": 0.99, "momentum": 0.0, "epsilon": 1e-8, "centered": False},
    },
}


def formulas(convention: str) -> str:
    """The formula family ``convention`` computes, a key of ``DEFAULTS``: "keras" for both Keras
    conventions (they differ only in how hyper-parameters are cast, ``_cast``), "torch" for torch's."""
    if convention not in CONVENTIONS:
        raise ValueError(f"`convention` must be one of {CONVENTIONS}. Received: convention={convention!r}")
    return "torch" if convention == "torch" else "keras"


def _check_learning_rate(learning_rate: float) -> None:
    if not learning_rate >= 0:
        raise ValueError(f"`learning_rate` must be >= 0. Received: learning_rate={learning_rate}")


def _check_fraction(name: str, value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={value}")


def _check_epsilon(epsilon: float) -> None:
    if not epsilon >= 0:
        raise ValueError(f"`epsilon` must be >= 0. Received: epsilon={epsilon}")


def _cast(value: float, dtype: type[Scalar], convention: str) -> Scalar:
    """A hyper-parameter in the run's dtype as ``convention`` casts it. "keras" is Keras'
    ``ops.cast(value, dtype)`` of a Python float on the TensorFlow backend: ``tf.cast`` makes a
    float32 tensor first, so a float64 run gets ``float64(float32(value))``. Every other
    convention (Keras on JAX and torch, torch itself) casts exactly: ``dtype(value)``."""
    return dtype(np.float32(value)) if convention == "keras" else dtype(value)


def _lerp(start: Array, end: Array, weight: Scalar) -> Array:
    """torch.lerp: the weight-below-one-half branch keeps ``start`` exact for small weights."""
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1 - weight)


class SGD:
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    Without momentum both frameworks compute (convention ``"common"``)::

        w = w - learning_rate * g

    ``convention="keras"`` (``keras.optimizers.SGD``; ``v`` starts at 0; ``momentum``
    rounded to float32 first, see ``_cast``; ``"keras-unrounded"``: the same, ``momentum``
    exact)::

        v = v * momentum - g * learning_rate
        w = w + v                                     # nesterov=False
        w = w + (v * momentum - g * learning_rate)    # nesterov=True

    ``convention="torch"`` (``torch.optim.SGD``, dampening 0)::

        buf = g                                       # first step: a copy of g, not 0
        buf = buf * momentum + g                      # later steps
        w = w + (-learning_rate) * buf                # nesterov=False
        w = w + (-learning_rate) * (g + momentum * buf)   # nesterov=True

    Equal in exact arithmetic (torch's ``buf`` is Keras' ``-v / learning_rate``) for
    a constant learning rate; the roundings differ. ``nesterov=True`` needs
    ``momentum > 0``: torch rejects it otherwise and Keras silently runs plain SGD,
    so it is rejected here too.
    """

    def __init__(self, *, learning_rate: float, momentum: float, nesterov: bool, convention: str) -> None:
        _check_learning_rate(learning_rate)
        _check_fraction("momentum", momentum)
        self._formulas = formulas(convention)
        if nesterov and momentum == 0:
            raise ValueError(f"`nesterov=True` needs momentum > 0. Received: momentum={momentum}")
        self.learning_rate, self.momentum, self.nesterov = learning_rate, momentum, nesterov
        self.convention = convention if momentum > 0 else "common"
        self.velocity: dict[str, Array] = {}  # Keras' v, torch's buf

    def step(self, params: dict[str, Array], grads: dict[str, Array]) -> None:
        for name, p in params.items():
            g, dtype = grads[name], p.dtype.type
            lr, mu = dtype(self.learning_rate), _cast(self.momentum, dtype, self.convention)
            if self.convention == "common":
                p -= lr * g
            elif self._formulas == "keras":
                v = self.velocity.setdefault(name, np.zeros_like(p))
                v[...] = v * mu - g * lr
                p += v * mu - g * lr if self.nesterov else v
            else:
                if name not in self.velocity:
                    buf = self.velocity[name] = g.copy()
                else:
                    buf = self.velocity[name]
                    buf[...] = buf * mu + g
                p += -lr * (g + mu * buf if self.nesterov else buf)


class Adam:
    """Adam, optionally AMSGrad. ``m``, ``v`` (and ``v_max``) start at 0; ``t`` counts steps from 1.

    ``convention="keras"`` (``keras.optimizers.Adam``; ``epsilon`` is the paper's
    "epsilon hat", added before the bias correction; ``beta**t`` in the parameter dtype,
    from the ``beta``s rounded to float32 first, see ``_cast``; ``"keras-unrounded"``: the
    same from the exact ``beta``s)::

        alpha = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        m = m + (g - m) * (1 - beta_1)
        v = v + (g * g - v) * (1 - beta_2)
        v_max = maximum(v_max, v); v = v_max          # amsgrad=True: max of the raw v
        w = w - (m * alpha) / (sqrt(v) + epsilon)

    ``convention="torch"`` (``torch.optim.Adam``; ``epsilon`` added after the bias
    correction; the ``bias_correction``s and ``step_size`` are Python doubles)::

        m = lerp(m, g, 1 - beta_1)                    # m + (1 - beta_1) * (g - m)
        v = v * beta_2 + (1 - beta_2) * g * g
        bias_correction1 = 1 - beta_1**t
        bias_correction2 = 1 - beta_2**t
        step_size = learning_rate / bias_correction1
        v_max = maximum(v_max, v); v = v_max          # amsgrad=True: max of the raw v
        denom = sqrt(v) / bias_correction2**0.5 + epsilon
        w = w + (-step_size) * m / denom

    No constant epsilon makes the two equal (Keras' epsilon is scaled by
    ``sqrt(1 - beta_2**t)`` relative to torch's).
    """

    def __init__(self, *, learning_rate: float, beta_1: float, beta_2: float, epsilon: float, amsgrad: bool,
                 convention: str) -> None:
        _check_learning_rate(learning_rate)
        _check_fraction("beta_1", beta_1)
        _check_fraction("beta_2", beta_2)
        _check_epsilon(epsilon)
        self._formulas = formulas(convention)
        self.learning_rate, self.beta_1, self.beta_2 = learning_rate, beta_1, beta_2
        self.epsilon, self.amsgrad, self.convention = epsilon, amsgrad, convention
        self.t = 0
        self.m: dict[str, Array] = {}
        self.v: dict[str, Array] = {}
        self.v_max: dict[str, Array] = {}

    def step(self, params: dict[str, Array], grads: dict[str, Array]) -> None:
        self.t += 1
        for name, p in params.items():
            g = grads[name]
            m = self.m.setdefault(name, np.zeros_like(p))
            v = self.v.setdefault(name, np.zeros_like(p))
            if self._formulas == "keras":
                self._keras(p, g, m, v, name)
            else:
                self._torch(p, g, m, v, name)

    def _keras(self, p: Array, g: Array, m: Array, v: Array, name: str) -> None:
        dtype = p.dtype.type
        t, lr, eps = dtype(self.t), dtype(self.learning_rate), dtype(self.epsilon)
        beta_1_power = _cast(self.beta_1, dtype, self.convention) ** t
        beta_2_power = _cast(self.beta_2, dtype, self.convention) ** t
        alpha = lr * np.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        m += (g - m) * dtype(1 - self.beta_1)
        v += (g * g - v) * dtype(1 - self.beta_2)
        if self.amsgrad:
            v_max = self.v_max.setdefault(name, np.zeros_like(p))
            np.maximum(v_max, v, out=v_max)
            v = v_max
        p -= (m * alpha) / (np.sqrt(v) + eps)

    def _torch(self, p: Array, g: Array, m: Array, v: Array, name: str) -> None:
        dtype = p.dtype.type
        t = float(self.t)
        m[...] = _lerp(m, g, dtype(1 - self.beta_1))
        v[...] = v * dtype(self.beta_2) + dtype(1 - self.beta_2) * g * g
        bias_correction1 = 1 - self.beta_1 ** t
        bias_correction2 = 1 - self.beta_2 ** t
        step_size = self.learning_rate / bias_correction1
        bias_correction2_sqrt = bias_correction2 ** 0.5
        if self.amsgrad:
            v_max = self.v_max.setdefault(name, np.zeros_like(p))
            np.maximum(v_max, v, out=v_max)
            v = v_max
        denom = np.sqrt(v) / dtype(bias_correction2_sqrt) + dtype(self.epsilon)
        p += dtype(-step_size) * m / denom


class RMSprop:
    """RMSprop, optionally with momentum and centred. ``v``, ``a``, ``buf`` start at 0.

    ``rho`` is torch's ``alpha``. ``convention="keras"`` (``keras.optimizers.RMSprop``;
    epsilon *inside* the square root; ``"keras-unrounded"`` is the same arithmetic, Keras
    rounds no RMSprop hyper-parameter to float32)::

        v = rho * v + (1 - rho) * (g * g)
        a = rho * a + (1 - rho) * g                   # centered=True
        denominator = v - a * a + epsilon             # centered=True
        denominator = v + epsilon                     # centered=False
        increment = (learning_rate * g) / sqrt(denominator)
        buf = momentum * buf + increment; w = w - buf  # momentum > 0
        w = w - increment                             # momentum = 0

    ``convention="torch"`` (``torch.optim.RMSprop``; epsilon *outside* the square root,
    the learning rate applied after the momentum)::

        v = v * rho + (1 - rho) * g * g
        a = lerp(a, g, 1 - rho)                       # centered=True: a + (1 - rho) * (g - a)
        avg = sqrt(v - a * a) + epsilon               # centered=True
        avg = sqrt(v) + epsilon                       # centered=False
        buf = buf * momentum + g / avg; w = w + (-learning_rate) * buf   # momentum > 0
        w = w + (-learning_rate) * g / avg            # momentum = 0
    """

    def __init__(self, *, learning_rate: float, rho: float, momentum: float, epsilon: float, centered: bool,
                 convention: str) -> None:
        _check_learning_rate(learning_rate)
        _check_fraction("rho", rho)
        _check_fraction("momentum", momentum)
        _check_epsilon(epsilon)
        self._formulas = formulas(convention)
        self.learning_rate, self.rho, self.momentum = learning_rate, rho, momentum
        self.epsilon, self.centered, self.convention = epsilon, centered, convention
        self.v: dict[str, Array] = {}
        self.a: dict[str, Array] = {}
        self.buf: dict[str, Array] = {}

    def step(self, params: dict[str, Array], grads: dict[str, Array]) -> None:
        for name, p in params.items():
            g, dtype = grads[name], p.dtype.type
            lr, rho, one_minus_rho = dtype(self.learning_rate), dtype(self.rho), dtype(1 - self.rho)
            eps, mu = dtype(self.epsilon), dtype(self.momentum)
            v = self.v.setdefault(name, np.zeros_like(p))
            a = self.a.setdefault(name, np.zeros_like(p)) if self.centered else None
            buf = self.buf.setdefault(name, np.zeros_like(p)) if self.momentum > 0 else None
            if self._formulas == "keras":
                v[...] = rho * v + one_minus_rho * (g * g)
                if self.centered:
                    assert a is not None
                    a[...] = rho * a + one_minus_rho * g
                    denominator = v - a * a + eps
                else:
                    denominator = v + eps
                increment = (lr * g) / np.sqrt(denominator)
                if buf is not None:
                    buf[...] = mu * buf + increment
                    p -= buf
                else:
                    p -= increment
            else:
                v[...] = v * rho + one_minus_rho * g * g
                if self.centered:
                    assert a is not None
                    a[...] = _lerp(a, g, one_minus_rho)
                    avg = np.sqrt(v - a * a) + eps
                else:
                    avg = np.sqrt(v) + eps
                if buf is not None:
                    buf[...] = buf * mu + g / avg
                    p += -lr * buf
                else:
                    p += -lr * g / avg


OPTIMIZERS: dict[str, type[SGD | Adam | RMSprop]] = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


class OptimizerSpecLike(Protocol):
    """What ``hyperparameters`` and ``make_optimizer`` read of a spec (the harness's ``OptimizerSpec``)."""

    @property
    def name(self) -> str: ...

    @property
    def learning_rate(self) -> float: ...

    @property
    def options(self) -> Mapping[str, Any]: ...


def hyperparameters(spec: OptimizerSpecLike, *, convention: str) -> dict[str, Any]:
    """Every hyper-parameter of ``spec`` (an ``OptimizerSpec``: ``name``, ``learning_rate``,
    ``options``), the omitted ones at ``convention``'s defaults, under Keras' names; numbers
    as Python floats (Keras rejects an integer momentum), flags as bools, anything else a ValueError.
    Both Keras conventions take Keras' defaults."""
    family = formulas(convention)
    if spec.name not in OPTIMIZERS:
        raise ValueError(f"`name` must be one of {tuple(OPTIMIZERS)}. Received: name={spec.name!r}")
    values = {"learning_rate": spec.learning_rate,
              **{k: spec.options.get(k, default) for k, default in DEFAULTS[spec.name][family].items()}}
    for k, value in values.items():
        flag = k in ("nesterov", "amsgrad", "centered")
        if isinstance(value, bool) != flag or not isinstance(value, (bool, int, float)):
            raise ValueError(f"`{k}` must be {'True or False' if flag else 'a number'}. Received: {k}={value!r}")
    return {k: value if isinstance(value, bool) else float(value) for k, value in values.items()}


def make_optimizer(spec: OptimizerSpecLike, *, convention: str) -> SGD | Adam | RMSprop:
    """The reference optimiser of ``spec`` computing ``convention``'s arithmetic with its defaults."""
    return OPTIMIZERS[spec.name](**hyperparameters(spec, convention=convention), convention=convention)
