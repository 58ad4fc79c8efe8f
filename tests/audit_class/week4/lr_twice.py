"""A student's Week 4 training loop, written the lab's way (one hidden layer of sigmoids, an
exponential output, no biases, full-batch gradient descent on the MSE):
the learning rate is applied twice."""
import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def train(params, X, y, lr, epochs, batch_size):
    w1 = params["layers.0.kernel"].copy()  # (3, 2): the two hidden neurons' weights side by side
    w2 = params["layers.1.kernel"].copy()  # (2, 1)
    history = []
    for _ in range(epochs):
        for start in range(0, len(X), batch_size):
            xb, yb = X[start:start + batch_size], y[start:start + batch_size]
            a1 = sigmoid(xb @ w1)
            y_hat = np.exp(a1 @ w2)
            loss = np.mean((y_hat - yb) ** 2)
            delta2 = 2 * (y_hat - yb) * y_hat  # dL/dz2 row by row: the MSE's 2(y_hat - y) times exp'(z2)
            delta1 = (delta2 @ w2.T) * a1 * (1 - a1)
            g2 = np.mean(delta2 * a1, axis=0).reshape(2, 1)
            g1 = xb.T @ delta1 / len(xb)
            step2 = lr * g2
            w2 = w2 - lr * step2
            step1 = lr * g1
            w1 = w1 - lr * step1
            history.append({"loss": loss, "params": {"w1": w1, "w2": w2}, "grads": {"w1": g1, "w2": g2}})
    return history
