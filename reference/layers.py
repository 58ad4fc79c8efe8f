"""The dense layer: z = X @ W + b, a = activation(z).

Kernel layout is the labs' (and Keras'): ``W`` has shape ``(n_in, n_out)``;
the bias ``b`` has shape ``(n_out,)`` and is optional.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference.activations import get_activation
from reference.types import Array


@dataclass
class DenseCache:
    """What the backward pass needs from the forward pass."""

    x: Array
    z: Array
    a: Array


@dataclass(frozen=True)
class Dense:
    units: int
    activation: str = "linear"
    use_bias: bool = True
    axis: int = -1  # softmax axis

    def forward(self, x: Array, kernel: Array, bias: Array | None) -> tuple[Array, DenseCache]:
        """z = x @ W + b; a = activation(z)."""
        z = x @ kernel
        if self.use_bias:
            assert bias is not None, "a layer with use_bias=True needs a bias"
            z = z + bias
        act = get_activation(self.activation)
        a = act.forward(z, axis=self.axis) if act.takes_axis else act.forward(z)
        return a, DenseCache(x=x, z=z, a=a)

    def backward(
        self, grad_a: Array, kernel: Array, cache: DenseCache, *, input_gradient: bool = True
    ) -> tuple[Array | None, Array, Array | None]:
        """Chain rule through the layer.

        delta = dL/dz = activation'(z) * dL/da;  dL/dW = x.T @ delta;
        dL/db = sum over the batch of delta;     dL/dx = delta @ W.T.
        Returns ``(grad_x, grad_kernel, grad_bias)``; ``grad_x`` is None with
        ``input_gradient=False`` (the first layer's input is the data: nothing to pass it to).
        """
        act = get_activation(self.activation)
        if act.takes_axis:
            delta = act.backward(cache.z, cache.a, grad_a, axis=self.axis)
        else:
            delta = act.backward(cache.z, cache.a, grad_a)
        grad_kernel = cache.x.T @ delta
        grad_bias = np.sum(delta, axis=0) if self.use_bias else None
        grad_x = delta @ kernel.T if input_gradient else None
        return grad_x, grad_kernel, grad_bias
