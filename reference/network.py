"""A sequential network of dense layers, trained by backpropagation.

Parameters live in a flat dict named in the reference layout:
``layers.<i>.kernel`` with shape ``(n_in, n_out)`` and ``layers.<i>.bias``
with shape ``(n_out,)``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reference.layers import Dense, DenseCache
from reference.losses import Loss, get_loss
from reference.types import Array, Scalar


def kernel_name(i: int) -> str:
    return f"layers.{i}.kernel"


def bias_name(i: int) -> str:
    return f"layers.{i}.bias"


@dataclass(frozen=True)
class Network:
    layers: tuple[Dense, ...]
    # the losses it trains by name; None: the reference's own (``reference.losses.LOSSES``)
    losses: Mapping[str, Loss] | None = None

    def forward(self, x: Array, params: dict[str, Array]) -> tuple[Array, list[DenseCache]]:
        """a^(0) = x;  a^(k) = phi_k(a^(k-1) @ W_k + b_k).  Returns the output and the caches."""
        caches = []
        a = x
        for i, layer in enumerate(self.layers):
            a, cache = layer.forward(a, params[kernel_name(i)], params.get(bias_name(i)))
            caches.append(cache)
        return a, caches

    def loss_and_gradients(
        self, x: Array, y: Array, params: dict[str, Array], *, loss: str, clip: str = "none"
    ) -> tuple[Scalar, dict[str, Array]]:
        """Forward pass, batch-mean loss, then backpropagation from the output layer down
        (the gradient with respect to the data itself is not needed, so not computed)."""
        loss_fn = get_loss(loss) if self.losses is None else self.losses[loss]
        y_pred, caches = self.forward(x, params)
        value = loss_fn.value(y, y_pred, clip=clip)
        grad_a: Array | None = loss_fn.gradient(y, y_pred, clip=clip)
        grads: dict[str, Array] = {}
        for i in reversed(range(len(self.layers))):
            assert grad_a is not None  # every layer above the first passes its input's gradient down
            grad_a, grad_kernel, grad_bias = self.layers[i].backward(
                grad_a, params[kernel_name(i)], caches[i], input_gradient=i > 0)
            grads[kernel_name(i)] = grad_kernel
            if grad_bias is not None:
                grads[bias_name(i)] = grad_bias
        return value, grads
