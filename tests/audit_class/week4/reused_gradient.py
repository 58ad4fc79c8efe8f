"""A student's Week 4 training loop whose gradients are computed once, before the loop, from the
initial weights: every step reuses the first step's gradient."""
import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def train(params, X, y, lr, epochs, batch_size):
    w1 = params["layers.0.kernel"].copy()
    w2 = params["layers.1.kernel"].copy()
    a1 = sigmoid(X @ w1)
    y_hat = np.exp(a1 @ w2)
    delta2 = 2 * (y_hat - y) * y_hat
    delta1 = (delta2 @ w2.T) * a1 * (1 - a1)
    g2 = np.mean(delta2 * a1, axis=0).reshape(2, 1)
    g1 = X.T @ delta1 / len(X)
    history = []
    for _ in range(epochs):
        y_hat = np.exp(sigmoid(X @ w1) @ w2)
        loss = np.mean((y_hat - y) ** 2)
        w2 = w2 - lr * g2
        w1 = w1 - lr * g1
        history.append({"loss": loss, "params": {"w1": w1, "w2": w2}, "grads": {"w1": g1, "w2": g2}})
    return history
