"""Data generators: shapes, reproducibility from the seed, the 002 notebook's exact
numbers, held-out splits on the plan, and one-line errors for bad options."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.errors import BadInput
from harness.run.plan import make_plan
from harness.spec.data import GENERATORS, data_rows, make_data, make_splits, target_columns
from harness.spec.scenario import parse_scenario
from reference.layers import Dense
from reference.network import Network


def scenario(data: dict, *, layers: list[dict] | None = None, loss: str = "mse", input_dim: int = 2):
    layers = layers or [{"units": 1, "initializer": {"name": "ones"}}]
    raw = {"name": "t", "data": data, "model": {"input_dim": input_dim, "layers": layers},
           "training": {"loss": loss, "optimizer": {"name": "sgd", "learning_rate": 0.1}, "epochs": 1}}
    return parse_scenario(raw, path=Path("t.toml"))


def test_every_generator_has_check_make_describe():
    for name, gen in GENERATORS.items():
        assert gen.name == name and callable(gen.check) and callable(gen.make) and callable(gen.describe)


# --- sine-surface (002) ----------------------------------------------------------

SURFACE = {"generator": "sine-surface", "n": 10_000, "seed": 2025}


def test_sine_surface_shapes_and_reproducibility():
    X, y = make_data(scenario(SURFACE).data)
    assert X.shape == (10_000, 2) and y.shape == (10_000, 1) and X.dtype == y.dtype == np.float64
    X2, y2 = make_data(scenario(SURFACE).data)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    X3, _ = make_data(scenario({**SURFACE, "seed": 2026}).data)
    assert not np.array_equal(X, X3)
    assert np.all(np.abs(X) <= 5)


def test_sine_surface_is_the_notebooks_draw():
    """np.random.seed(2025); noise, then x1, then x2; y = x1*x2 + x1**2 + exp(sin(x2)) + noise."""
    np.random.seed(2025)
    noise = np.random.normal(0, 1, 10_000)
    x1 = np.random.uniform(-5, 5, 10_000)
    x2 = np.random.uniform(-5, 5, 10_000)
    X, y = make_data(scenario(SURFACE).data)
    assert np.array_equal(X, np.array([x1, x2]).T)
    assert np.array_equal(y, (x1 * x2 + x1 ** 2 + np.exp(np.sin(x2)) + noise).reshape(-1, 1))


def test_sine_surface_summary_as_printed():
    """002, In [4]: Mean: 9.532, Min: -7.282, Max: 53.252."""
    _, y = make_data(scenario(SURFACE).data)
    assert [f"{v:.3f}" for v in (np.mean(y), np.min(y), np.max(y))] == ["9.532", "-7.282", "53.252"]


@pytest.mark.parametrize("output, printed", [("linear", "198.65838851753207"), ("sigmoid", "203.1757236001885")])
def test_sine_surface_initial_mse_bit_exact(output, printed):
    """Hidden width 2, ones kernels, zero biases, sigmoid hidden layer: the notebook's MSE, every bit."""
    X, y = make_data(scenario(SURFACE).data)
    net = Network((Dense(2, "sigmoid"), Dense(1, output)))
    params = {"layers.0.kernel": np.ones((2, 2)), "layers.0.bias": np.zeros(2),
              "layers.1.kernel": np.ones((2, 1)), "layers.1.bias": np.zeros(1)}
    loss, _ = net.loss_and_gradients(X, y, params, loss="mse")
    assert repr(float(loss)) == printed


# --- xor (004) -------------------------------------------------------------------

XOR = {"generator": "xor", "seed": 0}


def test_xor_shapes_labels_and_splits():
    spec = scenario(XOR, loss="binary_crossentropy").data
    X, y = make_data(spec)
    splits = make_splits(spec)
    assert X.shape == (800, 2) and y.shape == (800, 1)
    assert sorted(splits) == ["test", "validation"]
    assert splits["validation"][0].shape == (100, 2) and splits["test"][1].shape == (100, 1)
    for Xs, ys in [(X, y), *splits.values()]:
        assert set(np.unique(ys)) == {0.0, 1.0}
        assert np.array_equal(ys[:, 0], ((Xs[:, 0] > 0) != (Xs[:, 1] > 0)).astype(float))
        assert np.all(np.abs(Xs) <= 1)
    assert 0.4 < y.mean() < 0.6  # two quadrants of four


def test_xor_reproducible_and_disjoint():
    a = scenario(XOR, loss="binary_crossentropy").data
    X1, _ = make_data(a)
    X2, _ = make_data(scenario(XOR, loss="binary_crossentropy").data)
    assert np.array_equal(X1, X2)
    X3, _ = make_data(scenario({**XOR, "seed": 1}, loss="binary_crossentropy").data)
    assert not np.array_equal(X1, X3)
    rows = np.concatenate([X1, *(Xs for Xs, _ in make_splits(a).values())])
    assert len(np.unique(rows, axis=0)) == 1000


def test_xor_margin_and_sizes():
    spec = scenario({**XOR, "margin": 0.1, "n_train": 50, "n_validation": 0, "n_test": 7},
                    loss="binary_crossentropy").data
    X, _ = make_data(spec)
    splits = make_splits(spec)
    assert X.shape == (50, 2) and list(splits) == ["test"] and splits["test"][0].shape == (7, 2)
    assert np.all(np.abs(X) >= 0.1) and np.all(np.abs(X) <= 1)


def test_plan_carries_splits_in_the_plan_dtype():
    s = scenario(XOR, loss="binary_crossentropy")
    plan = make_plan(s, "float32")
    assert sorted(plan.splits) == ["test", "validation"]
    assert all(X.dtype == y.dtype == np.float32 for X, y in plan.splits.values())
    assert make_plan(scenario(SURFACE), "float64").splits == {}


# --- bad options -----------------------------------------------------------------

TEACHER = {"generator": "teacher", "n": 5, "seed": 0, "teacher": [{"kernel": [[1.0], [1.0]]}]}

BAD = {
    "surface-n-zero": ({**SURFACE, "n": 0}, 2, "data.n"),
    "surface-missing-seed": ({"generator": "sine-surface", "n": 5}, 2, "data.seed"),
    "surface-unknown-field": ({**SURFACE, "noise": 0.5}, 2, "data.noise"),
    "surface-three-inputs": (SURFACE, 3, "data.generator"),
    "xor-missing-seed": ({"generator": "xor"}, 2, "data.seed"),
    "xor-margin-one": ({**XOR, "margin": 1.0}, 2, "data.margin"),
    "xor-negative-test": ({**XOR, "n_test": -1}, 2, "data.n_test"),
    "xor-float-train": ({**XOR, "n_train": 8.5}, 2, "data.n_train"),
    "xor-three-inputs": (XOR, 3, "data.generator"),
    "unknown-generator": ({"generator": "spiral", "seed": 0}, 2, "data.generator"),
    # seeds numpy's RandomState refuses (it once raised a traceback when the run drew the data)
    "surface-seed-2**32": ({**SURFACE, "seed": 2 ** 32}, 2, "data.seed"),
    "xor-seed-2**32": ({**XOR, "seed": 2 ** 32}, 2, "data.seed"),
    "xor-seed-negative": ({**XOR, "seed": -1}, 2, "data.seed"),
    "teacher-seed-2**32": ({**TEACHER, "seed": 2 ** 32}, 2, "data.seed"),
    # non-finite numbers
    "xor-margin-nan": ({**XOR, "margin": float("nan")}, 2, "data.margin"),
    "teacher-kernel-inf": ({**TEACHER, "teacher": [{"kernel": [[float("inf")], [1.0]]}]}, 2, "data.teacher[0].kernel"),
    "teacher-inline-X-nan": ({"generator": "teacher", "X": [[1.0, float("nan")]], "teacher": TEACHER["teacher"]}, 2,
                             "data.X"),
    # y has one column per output of the model (1 here)
    "teacher-two-outputs": ({**TEACHER, "teacher": [{"kernel": [[1.0, 0.0], [0.0, 1.0]]}]}, 2,
                            "data.teacher[0].kernel"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_generator_options_are_one_line(case):
    data, input_dim, field = BAD[case]
    layers = [{"units": 1, "kernel": [[1.0]] * input_dim}]
    with pytest.raises(BadInput) as info:
        scenario(data, layers=layers, input_dim=input_dim)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"t.toml: {field}: expected"), message


def test_every_generator_knows_its_rows_and_target_columns_without_drawing():
    for data in (SURFACE, XOR, TEACHER):
        spec = scenario(data, loss="binary_crossentropy" if data is XOR else "mse").data
        X, y = make_data(spec)
        assert (data_rows(spec), target_columns(spec)) == (X.shape[0], y.shape[1])


def test_the_largest_seed_numpy_takes_is_fine():
    X, _ = make_data(scenario({**SURFACE, "n": 3, "seed": 2 ** 32 - 1}).data)
    assert X.shape == (3, 2)
