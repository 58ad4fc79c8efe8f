"""Optimisers: each one states its update rule as code in its docstring.

An optimiser is stateful: ``step(params, grads)`` updates ``params`` (a dict of
arrays, changed in place) from ``grads`` (a dict with the same names).
Scalars are cast to the parameters' dtype, so a float32 run stays float32.
"""
from __future__ import annotations

import numpy as np


class SGD:
    """Plain stochastic gradient descent, identical in Keras and torch::

        w = w - learning_rate * g
    """

    convention = "common"

    def __init__(self, *, learning_rate: float) -> None:
        if not learning_rate >= 0:
            raise ValueError(f"learning_rate must be >= 0. Received: learning_rate={learning_rate}")
        self.learning_rate = learning_rate

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        for name, p in params.items():
            lr = p.dtype.type(self.learning_rate)
            p -= lr * grads[name]
