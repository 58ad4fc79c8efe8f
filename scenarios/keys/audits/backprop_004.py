"""Hand-written backward passes for the 004 perceptron (ReLU hidden, sigmoid output), for
``nn-parity audit``: one with the 004 sheet's mistake, one correct.

Each takes the parameters in the reference layout and a batch, and returns the gradient of
the batch-mean binary cross-entropy for every parameter (labels w1, b1, w2, b2).
"""
import numpy as np


def _forward(params, X):
    z1 = X @ params["layers.0.kernel"] + params["layers.0.bias"]
    a1 = np.maximum(z1, 0.0)
    z2 = a1 @ params["layers.1.kernel"] + params["layers.1.bias"]
    a2 = 1.0 / (1.0 + np.exp(-z2))
    return z1, a1, z2, a2


def _backward_from_delta2(params, X, z1, a1, delta2):
    m = X.shape[0]
    delta1 = (delta2 @ params["layers.1.kernel"].T) * (z1 > 0)
    return {"w1": X.T @ delta1 / m, "b1": delta1.sum(axis=0) / m,
            "w2": a1.T @ delta2 / m, "b2": delta2.sum(axis=0) / m}


def sheet_backward(params, X, y):
    """As the 004 sheet: the output error (a2 - y) multiplied by sigmoid'(z2)."""
    z1, a1, z2, a2 = _forward(params, X)
    delta2 = (a2 - y) * a2 * (1.0 - a2)
    return _backward_from_delta2(params, X, z1, a1, delta2)


def cross_entropy_backward(params, X, y):
    """Sigmoid and binary cross-entropy together: dL/dz2 = (a2 - y) / m."""
    z1, a1, z2, a2 = _forward(params, X)
    return _backward_from_delta2(params, X, z1, a1, a2 - y)
