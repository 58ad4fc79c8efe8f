"""A student's mini-batch loop for a regression with a hidden layer and biases, as the maths lab's
lr_gradient_descent goes through the batches (in the data's order): correct."""
import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def train(params, X, y, lr, epochs, batch_size):
    W1, b1 = params["layers.0.kernel"].copy(), params["layers.0.bias"].copy()
    W2, b2 = params["layers.1.kernel"].copy(), params["layers.1.bias"].copy()
    history = []
    for _ in range(epochs):
        for i in range(0, len(X), batch_size):
            xb, yb = X[i:i + batch_size], y[i:i + batch_size]
            a1 = sigmoid(xb @ W1 + b1)
            out = a1 @ W2 + b2
            loss = np.mean((out - yb) ** 2)
            d2 = 2 * (out - yb) / len(xb)  # dL/dout of the batch mean, row by row
            dW2, db2 = a1.T @ d2, d2.sum(axis=0)
            d1 = (d2 @ W2.T) * a1 * (1 - a1)
            dW1, db1 = xb.T @ d1, d1.sum(axis=0)
            W1, b1, W2, b2 = W1 - lr * dW1, b1 - lr * db1, W2 - lr * dW2, b2 - lr * db2
            history.append({"loss": loss, "params": (W1, b1, W2, b2), "grads": (dW1, db1, dW2, db2)})
    return history
