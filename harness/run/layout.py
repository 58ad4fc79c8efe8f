"""Layout conversions between the reference and the frameworks, in one place.

Reference and Keras: kernel ``W`` of shape ``(n_in, n_out)``, ``z = x @ W + b``.
torch ``nn.Linear.weight``: shape ``(n_out, n_in)``, ``z = x @ weight.T + bias``.
Biases are ``(n_out,)`` everywhere.
"""
from __future__ import annotations

import numpy as np


def kernel_to_torch(kernel: np.ndarray) -> np.ndarray:
    """(n_in, n_out) -> (n_out, n_in), contiguous."""
    return np.ascontiguousarray(kernel.T)


def kernel_from_torch(weight: np.ndarray) -> np.ndarray:
    """(n_out, n_in) -> (n_in, n_out); works on a stack ``(steps, n_out, n_in)`` too."""
    return np.swapaxes(weight, -1, -2)


def to_reference(name: str, value: np.ndarray, *, framework: str) -> np.ndarray:
    """A parameter (or a stack of them) in the reference layout."""
    if framework == "torch" and name.endswith(".kernel"):
        return kernel_from_torch(value)
    return value
