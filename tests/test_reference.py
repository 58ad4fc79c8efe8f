"""The reference's derivatives against central finite differences (float64)."""
from __future__ import annotations

import numpy as np
import pytest

from reference.activations import ACTIVATIONS, softmax
from reference.layers import Dense
from reference.losses import LOSSES
from reference.network import Network


def numeric_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_derivative_matches_finite_differences(name, rng):
    act = ACTIVATIONS[name]
    z = rng.normal(size=(4, 3)) + 0.05  # keep relu away from its kink
    w = rng.normal(size=(4, 3))  # an arbitrary upstream gradient
    kw = {"axis": -1} if act.takes_axis else {}
    analytic = act.backward(z, act.forward(z, **kw), w, **kw)
    numeric = numeric_grad(lambda zz: float(np.sum(w * act.forward(zz, **kw))), z)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_softmax_over_axis_of_length_one_is_one():
    np.testing.assert_array_equal(softmax(np.array([[1.0], [8.0]]), axis=1), [[1.0], [1.0]])


def _targets(name: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    if name == "mse":
        return rng.normal(size=shape)
    if name == "binary_crossentropy":
        return rng.integers(0, 2, size=shape).astype(float)
    return np.eye(shape[1])[rng.integers(0, shape[1], size=shape[0])]


@pytest.mark.parametrize("clip", ["none", "keras", "torch"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_gradient_matches_finite_differences(name, clip, rng):
    loss = LOSSES[name]
    y = _targets(name, (5, 3), rng)
    p = rng.uniform(0.05, 0.95, size=(5, 3))
    if name == "categorical_crossentropy" and clip != "keras":
        p = p / p.sum(axis=1, keepdims=True)
    analytic = loss.gradient(y, p, clip=clip)
    numeric = numeric_grad(lambda pp: float(loss.value(y, pp, clip=clip)), p)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_keras_clip_has_zero_gradient_outside_the_interval():
    p = np.array([[1e-9], [0.5]])
    y = np.array([[1.0], [1.0]])
    grad = LOSSES["binary_crossentropy"].gradient(y, p, clip="keras")
    assert grad[0, 0] == 0.0 and grad[1, 0] != 0.0
    assert np.isclose(LOSSES["binary_crossentropy"].value(y, p, clip="keras"), -(np.log(1e-7) + np.log(0.5)) / 2)


@pytest.mark.parametrize("loss, out_act, units", [
    ("mse", "exponential", 1), ("binary_crossentropy", "sigmoid", 1), ("categorical_crossentropy", "softmax", 3)])
def test_network_gradients_match_finite_differences(loss, out_act, units, rng):
    net = Network(layers=(Dense(4, "tanh"), Dense(units, out_act, use_bias=True)))
    params = {"layers.0.kernel": rng.normal(size=(3, 4)) * 0.5, "layers.0.bias": rng.normal(size=4) * 0.1,
              "layers.1.kernel": rng.normal(size=(4, units)) * 0.5, "layers.1.bias": rng.normal(size=units) * 0.1}
    x = rng.normal(size=(6, 3))
    y = _targets(loss, (6, units), rng)
    _, grads = net.loss_and_gradients(x, y, params, loss=loss)
    for name, value in params.items():
        def f(v, name=name):
            return float(net.loss_and_gradients(x, y, {**params, name: v}, loss=loss)[0])
        np.testing.assert_allclose(grads[name], numeric_grad(f, value), rtol=1e-6, atol=1e-9, err_msg=name)


def test_float32_inputs_stay_float32():
    net = Network(layers=(Dense(2, "sigmoid", use_bias=False), Dense(1, "exponential", use_bias=False)))
    params = {"layers.0.kernel": np.ones((3, 2), np.float32), "layers.1.kernel": np.ones((2, 1), np.float32)}
    value, grads = net.loss_and_gradients(np.ones((4, 3), np.float32), np.ones((4, 1), np.float32), params, loss="mse")
    assert value.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())
