"""Activation functions and their derivatives.

Each activation is a pair of rules, written as the labs write them:

* ``forward(z) -> a``
* ``backward(z, a, grad_a) -> grad_z`` (the chain rule through the activation)

Element-wise activations multiply ``grad_a`` by ``f'(z)``; softmax applies its
Jacobian along its axis: ``grad_z = a * (grad_a - sum(grad_a * a, axis))``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, cast

import numpy as np

from reference.types import Array


def linear(z: Array) -> Array:
    return z


def linear_grad(z: Array, a: Array, grad_a: Array) -> Array:  # noqa: ARG001 - Activation.backward's signature: each derivative uses what it needs
    return grad_a


def sigmoid(z: Array) -> Array:
    """S(z) = 1 / (1 + exp(-z))."""
    one = np.asarray(1, dtype=z.dtype)
    return one / (one + np.exp(-z))


def sigmoid_grad(z: Array, a: Array, grad_a: Array) -> Array:  # noqa: ARG001 - Activation.backward's signature: each derivative uses what it needs
    """S'(z) = S(z) (1 - S(z))."""
    return grad_a * a * (1 - a)


def tanh(z: Array) -> Array:
    """tanh(z) = (exp(2z) - 1) / (exp(2z) + 1), computed stably by NumPy."""
    return np.tanh(z)


def tanh_grad(z: Array, a: Array, grad_a: Array) -> Array:  # noqa: ARG001 - Activation.backward's signature: each derivative uses what it needs
    """tanh'(z) = 1 - tanh(z)^2."""
    return grad_a * (1 - a * a)


def relu(z: Array) -> Array:
    """ReLU(z) = max(0, z)."""
    return np.maximum(z, 0).astype(z.dtype, copy=False)


def relu_grad(z: Array, a: Array, grad_a: Array) -> Array:  # noqa: ARG001 - Activation.backward's signature: each derivative uses what it needs
    """ReLU'(z) = 1 where z > 0, else 0 (0 at z = 0, as Keras and torch do)."""
    return grad_a * (z > 0).astype(grad_a.dtype)


def exponential(z: Array) -> Array:
    """exp(z)."""
    return np.exp(z)


def exponential_grad(z: Array, a: Array, grad_a: Array) -> Array:  # noqa: ARG001 - Activation.backward's signature: each derivative uses what it needs
    """exp'(z) = exp(z)."""
    return grad_a * a


def softmax(z: Array, *, axis: int = -1) -> Array:
    """softmax(z)_i = exp(z_i) / sum_j exp(z_j) along ``axis``.

    The maximum is subtracted first (it cancels in the ratio); a softmax over
    an axis of length 1 is identically 1.
    """
    shifted = z - np.max(z, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return cast(Array, e / np.sum(e, axis=axis, keepdims=True))


def softmax_grad(z: Array, a: Array, grad_a: Array, *, axis: int = -1) -> Array:  # noqa: ARG001 - Activation.backward's signature
    """Jacobian-vector product: grad_z = a * (grad_a - sum(grad_a * a, axis))."""
    return cast(Array, a * (grad_a - np.sum(grad_a * a, axis=axis, keepdims=True)))


@dataclass(frozen=True)
class Activation:
    name: str
    forward: Callable[..., Array]
    backward: Callable[..., Array]
    takes_axis: bool = False


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation("linear", linear, linear_grad),
    "sigmoid": Activation("sigmoid", sigmoid, sigmoid_grad),
    "tanh": Activation("tanh", tanh, tanh_grad),
    "relu": Activation("relu", relu, relu_grad),
    "exponential": Activation("exponential", exponential, exponential_grad),
    "softmax": Activation("softmax", softmax, softmax_grad, takes_axis=True),
}


def get_activation(name: str) -> Activation:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}") from None
