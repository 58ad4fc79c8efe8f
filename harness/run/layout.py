"""Layout conversions between the reference and the frameworks, in one place.

Reference and Keras: kernel ``W`` of shape ``(n_in, n_out)``, ``z = x @ W + b``.
torch ``nn.Linear.weight``: shape ``(n_out, n_in)``, ``z = x @ weight.T + bias``.
Biases are ``(n_out,)`` everywhere. Parameters are named ``layers.<i>.kernel`` and
``layers.<i>.bias`` (``reference.network.kernel_name`` / ``bias_name``).
"""
from __future__ import annotations

import numpy as np


def is_kernel(name: str) -> bool:
    return name.endswith(".kernel")


def to_torch(name: str, value: np.ndarray) -> np.ndarray:
    """A parameter in torch's layout: a kernel (n_in, n_out) -> (n_out, n_in), contiguous."""
    return np.ascontiguousarray(value.T) if is_kernel(name) else value


def from_torch(name: str, value: np.ndarray) -> np.ndarray:
    """A parameter in the reference layout: a weight (n_out, n_in) -> (n_in, n_out); works on a
    stack ``(steps, n_out, n_in)`` too."""
    return np.swapaxes(value, -1, -2) if is_kernel(name) else value
