"""Losses and their gradients with respect to the prediction.

All losses are means over the batch, as the labs, Keras (``sum_over_batch_size``)
and torch (``reduction="mean"``) compute them.

Cross-entropy on probabilities needs a guard against ``log(0)``; which guard is
a named choice (``clip``), never a framework default:

* ``"none"``  : ``log(p)`` as written in the labs (``-inf`` at ``p = 0``);
* ``"keras"`` : ``p`` clipped to ``[1e-7, 1 - 1e-7]`` (Keras' ``epsilon()``), zero
  gradient outside the interval; categorical cross-entropy first renormalises
  each row to sum 1, as Keras does;
* ``"torch"`` : each ``log`` term clamped below at ``-100`` (``BCELoss``), zero
  gradient where the clamp binds; binary cross-entropy takes ``BCELoss``'s own
  backward, ``dL/dp = (p - y) / max(p (1 - p), 1e-12) / n`` (ATen's ``EPSILON``,
  a float ``1e-12``), which differs from the clamp's ``1/p`` once ``p (1 - p) < 1e-12``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np

from reference.types import Array, Scalar

KERAS_EPSILON = 1e-7
TORCH_LOG_FLOOR = -100.0
TORCH_GRAD_FLOOR = float(np.float32(1e-12))  # ATen's binary_cross_entropy_backward EPSILON (a C float)
CLIP_MODES = ("none", "keras", "torch")


def mse(y_true: Array, y_pred: Array, *, clip: str = "none") -> Scalar:  # noqa: ARG001 - every loss takes clip
    """L = mean((y_pred - y_true)^2) over every element."""
    return np.mean((y_pred - y_true) ** 2)


def mse_grad(y_true: Array, y_pred: Array, *, clip: str = "none") -> Array:  # noqa: ARG001 - every loss takes clip
    """dL/dy_pred = 2 (y_pred - y_true) / (number of elements)."""
    return 2 * (y_pred - y_true) / y_pred.dtype.type(y_pred.size)


def _log_terms(p: Array, clip: str) -> tuple[Array, Array]:
    """log(p) and its derivative 1/p under the chosen guard."""
    dtype = p.dtype
    if clip == "keras":
        eps = dtype.type(KERAS_EPSILON)
        clipped = np.clip(p, eps, 1 - eps)
        inside = ((p >= eps) & (p <= 1 - eps)).astype(dtype)
        return np.log(clipped), inside / clipped
    if clip == "torch":
        with np.errstate(divide="ignore"):
            raw = np.log(p)
            log_p = np.maximum(raw, dtype.type(TORCH_LOG_FLOOR))
            return log_p, np.where(raw >= TORCH_LOG_FLOOR, 1 / p, dtype.type(0))
    with np.errstate(divide="ignore"):
        return np.log(p), 1 / p


def binary_crossentropy(y_true: Array, y_pred: Array, *, clip: str = "none") -> Scalar:
    """L = -mean(y log p + (1 - y) log(1 - p))."""
    if clip == "keras":  # Keras clips p once, then takes both logs of the clipped value
        eps = y_pred.dtype.type(KERAS_EPSILON)
        p = np.clip(y_pred, eps, 1 - eps)
        return -np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))
    log_p, _ = _log_terms(y_pred, clip)
    log_q, _ = _log_terms(1 - y_pred, clip)
    return -np.mean(y_true * log_p + (1 - y_true) * log_q)


def binary_crossentropy_grad(y_true: Array, y_pred: Array, *, clip: str = "none") -> Array:
    """dL/dp = -(y / p - (1 - y) / (1 - p)) / (number of elements); with the torch guard,
    ``BCELoss``'s backward ``(p - y) / max(p (1 - p), 1e-12)`` / (number of elements)."""
    n = y_pred.dtype.type(y_pred.size)
    if clip == "torch":
        floor = y_pred.dtype.type(TORCH_GRAD_FLOOR)
        return cast(Array, (y_pred - y_true) / np.maximum(y_pred * (1 - y_pred), floor) / n)
    if clip == "keras":
        eps = y_pred.dtype.type(KERAS_EPSILON)
        p = np.clip(y_pred, eps, 1 - eps)
        inside = ((y_pred >= eps) & (y_pred <= 1 - eps)).astype(y_pred.dtype)
        return -inside * (y_true / p - (1 - y_true) / (1 - p)) / n
    _, inv_p = _log_terms(y_pred, clip)
    _, inv_q = _log_terms(1 - y_pred, clip)
    return -(y_true * inv_p - (1 - y_true) * inv_q) / n


def categorical_crossentropy(y_true: Array, y_pred: Array, *, clip: str = "none") -> Scalar:
    """L = -mean over rows of sum_k y_k log p_k."""
    p = y_pred / np.sum(y_pred, axis=-1, keepdims=True) if clip == "keras" else y_pred
    log_p, _ = _log_terms(p, clip)
    return cast(Scalar, -np.mean(np.sum(y_true * log_p, axis=-1)))


def categorical_crossentropy_grad(y_true: Array, y_pred: Array, *, clip: str = "none") -> Array:
    """dL/dp_k = -y_k / p_k / (number of rows); with Keras' renormalisation the
    chain rule through q = p / sum(p) adds ``sum_j y_j u_j / S`` to each entry."""
    rows = y_pred.dtype.type(y_pred.size // y_pred.shape[-1])
    if clip != "keras":
        _, inv_p = _log_terms(y_pred, clip)
        return -y_true * inv_p / rows
    total = np.sum(y_pred, axis=-1, keepdims=True)
    q = y_pred / total
    _, inv_q = _log_terms(q, clip)
    grad_q = -y_true * inv_q / rows
    return cast(Array, (grad_q - np.sum(grad_q * q, axis=-1, keepdims=True)) / total)


class LossValue(Protocol):
    """``value(y_true, y_pred, *, clip) -> L``: the batch-mean loss, a scalar of the prediction's dtype."""

    def __call__(self, y_true: Array, y_pred: Array, *, clip: str = "none") -> Scalar: ...


class LossGradient(Protocol):
    """``gradient(y_true, y_pred, *, clip) -> dL/dy_pred``, an array shaped as ``y_pred``."""

    def __call__(self, y_true: Array, y_pred: Array, *, clip: str = "none") -> Array: ...


@dataclass(frozen=True)
class Loss:
    name: str
    value: LossValue
    gradient: LossGradient


LOSSES: dict[str, Loss] = {
    "mse": Loss("mse", mse, mse_grad),
    "binary_crossentropy": Loss("binary_crossentropy", binary_crossentropy, binary_crossentropy_grad),
    "categorical_crossentropy": Loss(
        "categorical_crossentropy", categorical_crossentropy, categorical_crossentropy_grad
    ),
}


def get_loss(name: str) -> Loss:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}") from None
