"""The types the reference computes with: NumPy arrays and scalars of a floating dtype
(float64 by default, float32 when the inputs are float32). Annotations only."""
from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

Array: TypeAlias = npt.NDArray[np.floating[Any]]
"""An array of a floating dtype: inputs, activations, parameters, gradients, optimiser state."""

Scalar: TypeAlias = np.floating[Any]
"""A NumPy floating scalar of the array's dtype, e.g. a batch-mean loss or a hyper-parameter cast to it."""
