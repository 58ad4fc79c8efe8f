"""The instructor's adapter for 004's class (``nn-parity audit ... --adapter adapter_004.py``).

It runs after the student's notebook, in its namespace: ``backward`` puts the audit's initial
parameters into the student's ``TwoLayerPerceptron`` and returns what its own ``forward_pass``
and ``backward_prop`` compute, in the (params, X, y) -> gradients form the audit calls.
"""


def backward(params, X, y):
    model = TwoLayerPerceptron(2, 10)  # noqa: F821 - defined by the student's notebook
    model.W1 = params["layers.0.kernel"].copy()
    model.b1 = params["layers.0.bias"].copy()
    model.W2 = params["layers.1.kernel"].copy()
    model.b2 = params["layers.1.bias"].copy()
    Z1, A1, Z2, A2 = model.forward_pass(X)
    return model.backward_prop(X, y, Z1, A1, Z2, A2)
