"""Optimisers: first steps by hand, parity with the real Keras and torch optimizers, bad input.

Each reference optimiser computes one framework's convention; it must match that
framework's own optimizer class on the same gradients and must *not* match the other's.
"""
from __future__ import annotations

import inspect
from math import sqrt
from pathlib import Path

import numpy as np
import pytest

from harness.errors import BadInput
from harness.run.adapters import adapter, check_expressible, keras_tf, numpy_reference, torch_eager
from harness.run.plan import make_plan
from harness.spec.conventions import convention_difference, pinned
from harness.spec.scenario import OptimizerSpec, parse_scenario
from harness.spec.tolerance import DEFAULT_TOLERANCES, Tolerance, compare_elements
from reference.optimizers import CONVENTIONS, DEFAULTS, SGD, Adam, RMSprop, hyperparameters, make_optimizer

CONFIGS: dict[str, tuple[str, dict]] = {
    "sgd-momentum": ("sgd", {"momentum": 0.9}),
    "sgd-nesterov": ("sgd", {"momentum": 0.9, "nesterov": True}),
    "adam": ("adam", {}),
    "adam-amsgrad": ("adam", {"amsgrad": True}),
    "rmsprop": ("rmsprop", {}),
    "rmsprop-momentum": ("rmsprop", {"momentum": 0.9}),
    "rmsprop-centered": ("rmsprop", {"centered": True}),
}


def f32(x: float) -> float:
    """Keras' ops.cast of a Python float on the TF backend rounds it to float32 first."""
    return float(np.float32(x))


# --- the first two steps, by hand ----------------------------------------------
#
# One parameter w = 1.0, known gradients g1 = 2.0 then g2 = -0.05, learning rate 0.1.
# Adam and RMSprop use epsilon = 0.1 (and RMSprop rho = 0.9) in both conventions, so the
# numbers differ only by the formula. g2**2 = 0.0025 < v1, so AMSGrad keeps v1 at step 2.

HAND_OPTIONS = {"sgd": {}, "adam": {"epsilon": 0.1}, "rmsprop": {"rho": 0.9, "epsilon": 0.1}}
MU32, B1, B2 = f32(0.9), f32(0.9), f32(0.999)
_adam_keras_w1 = 1 - (0.1 * sqrt(1 - B2) / (1 - B1)) * 0.2 / (sqrt(0.004) + 0.1)  # m1 = 0.2, v1 = 0.004
_adam_torch_w1 = 1 - (0.1 / (1 - 0.9)) * 0.2 / (sqrt(0.004) / sqrt(1 - 0.999) + 0.1)
# step 2: m2 = 0.2 + (-0.05 - 0.2) * 0.1 = 0.175; v2 = 0.004 + (0.0025 - 0.004) * 0.001 = 0.0039985
_rms_keras_b1 = 0.1 * 2.0 / sqrt(0.4 + 0.1)  # v1 = 0.1 * 2.0**2 = 0.4
_rms_torch_b1 = 2.0 / (sqrt(0.4) + 0.1)
HAND: dict[tuple[str, str], tuple[float, float]] = {
    # Keras: v = v*m - g*lr, w += v (momentum via float32).  torch: buf = g, then buf*m + g; w -= lr*buf.
    ("sgd-momentum", "keras"): (1 - 0.2, 0.8 + (-0.2 * MU32 + 0.005)),
    ("sgd-momentum", "torch"): (1 - 0.1 * 2.0, 0.8 - 0.1 * (0.9 * 2.0 - 0.05)),
    # Keras: w += v*m - g*lr.  torch: w -= lr*(g + m*buf).
    ("sgd-nesterov", "keras"): (1 + (-0.2 * MU32 - 0.2),
                                1 + (-0.2 * MU32 - 0.2) + ((-0.2 * MU32 + 0.005) * MU32 + 0.005)),
    ("sgd-nesterov", "torch"): (1 - 0.1 * (2.0 + 0.9 * 2.0), 0.62 - 0.1 * (-0.05 + 0.9 * 1.75)),
    # Keras: w -= (lr*sqrt(1 - b2^t)/(1 - b1^t)) * m / (sqrt(v) + eps)
    # torch: w -= lr/(1 - b1^t) * m / (sqrt(v)/sqrt(1 - b2^t) + eps)
    ("adam", "keras"): (_adam_keras_w1, _adam_keras_w1 - (0.1 * sqrt(1 - B2**2) / (1 - B1**2)) * 0.175
                        / (sqrt(0.0039985) + 0.1)),
    ("adam", "torch"): (_adam_torch_w1, _adam_torch_w1 - (0.1 / (1 - 0.9**2)) * 0.175
                        / (sqrt(0.0039985) / sqrt(1 - 0.999**2) + 0.1)),
    ("adam-amsgrad", "keras"): (_adam_keras_w1, _adam_keras_w1 - (0.1 * sqrt(1 - B2**2) / (1 - B1**2)) * 0.175
                                / (sqrt(0.004) + 0.1)),
    ("adam-amsgrad", "torch"): (_adam_torch_w1, _adam_torch_w1 - (0.1 / (1 - 0.9**2)) * 0.175
                                / (sqrt(0.004) / sqrt(1 - 0.999**2) + 0.1)),
    # v2 = 0.9*0.4 + 0.1*0.0025 = 0.36025.  Keras: lr*g/sqrt(v + eps).  torch: lr*g/(sqrt(v) + eps).
    ("rmsprop", "keras"): (1 - 0.2 / sqrt(0.5), 1 - 0.2 / sqrt(0.5) + 0.005 / sqrt(0.36025 + 0.1)),
    ("rmsprop", "torch"): (1 - 0.2 / (sqrt(0.4) + 0.1), 1 - 0.2 / (sqrt(0.4) + 0.1) + 0.005 / (sqrt(0.36025) + 0.1)),
    # Keras: buf = m*buf + lr*g/sqrt(v + eps); w -= buf.  torch: buf = m*buf + g/(sqrt(v) + eps); w -= lr*buf.
    ("rmsprop-momentum", "keras"): (1 - _rms_keras_b1,
                                    1 - _rms_keras_b1 - (0.9 * _rms_keras_b1 - 0.005 / sqrt(0.46025))),
    ("rmsprop-momentum", "torch"): (1 - 0.1 * _rms_torch_b1, 1 - 0.1 * _rms_torch_b1
                                    - 0.1 * (0.9 * _rms_torch_b1 - 0.05 / (sqrt(0.36025) + 0.1))),
    # a1 = 0.1*2 = 0.2, a2 = 0.9*0.2 + 0.1*(-0.05) = 0.175.  Keras: sqrt(v - a^2 + eps).  torch: sqrt(v - a^2) + eps.
    ("rmsprop-centered", "keras"): (1 - 0.2 / sqrt(0.4 - 0.04 + 0.1),
                                    1 - 0.2 / sqrt(0.46) + 0.005 / sqrt(0.36025 - 0.175**2 + 0.1)),
    ("rmsprop-centered", "torch"): (1 - 0.2 / (sqrt(0.4 - 0.04) + 0.1),
                                    1 - 0.2 / 0.7 + 0.005 / (sqrt(0.36025 - 0.175**2) + 0.1)),
}


@pytest.mark.parametrize("config, convention", list(HAND), ids=[f"{c}[{v}]" for c, v in HAND])
def test_first_two_steps_match_the_rule_by_hand(config, convention):
    name, options = CONFIGS[config]
    optimizer = make_optimizer(OptimizerSpec(name, 0.1, {**options, **HAND_OPTIONS[name]}), convention=convention)
    w = {"w": np.array([1.0])}
    trajectory = []
    for g in (2.0, -0.05):
        optimizer.step(w, {"w": np.array([g])})
        trajectory.append(w["w"][0])
    np.testing.assert_allclose(trajectory, HAND[(config, convention)], rtol=1e-13, atol=0)
    assert optimizer.convention == convention


def test_plain_sgd_is_common_to_both_conventions():
    for convention in CONVENTIONS:
        optimizer = make_optimizer(OptimizerSpec("sgd", 0.1), convention=convention)
        w = {"w": np.array([1.0])}
        optimizer.step(w, {"w": np.array([2.0])})
        optimizer.step(w, {"w": np.array([-0.05])})
        assert optimizer.convention == "common"
        np.testing.assert_allclose(w["w"], [1 - 0.2 + 0.005], rtol=1e-15)


def test_float32_parameters_stay_float32():
    for config, (name, options) in CONFIGS.items():
        for convention in CONVENTIONS:
            optimizer = make_optimizer(OptimizerSpec(name, 0.01, options), convention=convention)
            w = {"w": np.ones(3, dtype=np.float32)}
            optimizer.step(w, {"w": np.full(3, 0.5, dtype=np.float32)})
            assert w["w"].dtype == np.float32, (config, convention)


# --- parity with the frameworks' own optimizers --------------------------------

STEPS = 50
SHAPES = {"a": (3, 5), "b": (17,)}  # 15 and 17 elements: torch's vectorised loop and its scalar tail
LEARNING_RATES = {"sgd": 0.05, "adam": 0.01, "rmsprop": 0.01}
# float64: the harness default (rtol 1e-12, atol 1e-14). float32: rtol 1e-6 plus an atol of a few
# float32 ulps at the parameters' scale (|w| up to ~3): torch fuses multiply-adds where the
# reference rounds twice, and momentum 0.9 carries each rounding ~10 steps (measured: at most
# 9.5e-7 absolute, SGD momentum, torch convention; the Keras convention is bitwise here).
TOLERANCES = {"float64": DEFAULT_TOLERANCES["float64"], "float32": Tolerance(rtol=1e-6, atol=2e-6)}


def gradient_sequence(dtype: str) -> list[dict[str, np.ndarray]]:
    """Gradients of magnitudes from e^-3 to e^1 (so epsilon and the moments all matter)."""
    rng = np.random.default_rng(3)
    return [{k: (rng.standard_normal(s) * np.exp(rng.uniform(-3, 1))).astype(dtype) for k, s in SHAPES.items()}
            for _ in range(STEPS)]


def initial(dtype: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}


def reference_steps(spec: OptimizerSpec, convention: str, dtype: str) -> list[dict[str, np.ndarray]]:
    optimizer, params, out = make_optimizer(spec, convention=convention), initial(dtype), []
    for grads in gradient_sequence(dtype):
        optimizer.step(params, grads)
        out.append({k: v.copy() for k, v in params.items()})
    return out


def keras_steps(spec: OptimizerSpec, dtype: str) -> list[dict[str, np.ndarray]]:
    """The adapter's ``keras.optimizers`` object, applied eagerly to Keras variables."""
    tf, keras = keras_tf.import_keras()
    out = []
    with keras_tf.floatx(keras, dtype):
        optimizer, _ = keras_tf.build_optimizer(keras, spec)
        variables = {k: keras.Variable(v, dtype=dtype) for k, v in initial(dtype).items()}
        optimizer.build(list(variables.values()))
        for grads in gradient_sequence(dtype):
            optimizer.apply_gradients([(tf.constant(grads[k]), variables[k]) for k in variables])
            out.append({k: v.numpy().copy() for k, v in variables.items()})
    return out


def torch_steps(spec: OptimizerSpec, dtype: str) -> list[dict[str, np.ndarray]]:
    """The adapter's ``torch.optim`` object, stepped on torch parameters."""
    import torch

    params = {k: torch.nn.Parameter(torch.from_numpy(v)) for k, v in initial(dtype).items()}
    optimizer, _ = torch_eager.build_optimizer(torch, spec, list(params.values()))
    out = []
    for grads in gradient_sequence(dtype):
        for k, p in params.items():
            p.grad = torch.from_numpy(grads[k])
        optimizer.step()
        out.append({k: p.detach().numpy().copy() for k, p in params.items()})
    return out


FRAMEWORK_STEPS = {"keras": keras_steps, "torch": torch_steps}
FRAMEWORKS = tuple(FRAMEWORK_STEPS)  # each computes the reference convention of its own name


def first_mismatch(a, b, tol: Tolerance) -> str | None:
    for t, (pa, pb) in enumerate(zip(a, b)):
        for k in pa:
            bad = compare_elements(pa[k], pb[k], tol).bad
            if bad.any():
                i = np.unravel_index(np.argmax(bad), bad.shape)
                return f"step {t}, {k}{list(i)}: {pa[k][i]!r} vs {pb[k][i]!r} (rtol {tol.rtol}, atol {tol.atol})"
    return None


def spec_of(config: str, **extra) -> OptimizerSpec:
    name, options = CONFIGS[config]
    return OptimizerSpec(name, LEARNING_RATES[name], {**options, **extra})


PARITY = [pytest.param(c, fw, d, id=f"{c}[{fw}-{d}]") for c in CONFIGS for fw in FRAMEWORKS
          for d in ("float64", "float32")]


@pytest.mark.slow
@pytest.mark.parametrize("config, framework, dtype", PARITY)
def test_reference_matches_the_framework_in_its_convention(config, framework, dtype):
    spec = spec_of(config)  # omitted options: each convention takes its own framework's defaults
    reference = reference_steps(spec, framework, dtype)
    native = FRAMEWORK_STEPS[framework](spec, dtype)
    assert first_mismatch(reference, native, TOLERANCES[dtype]) is None


NEGATIVE = [pytest.param(c, fw, id=f"{c}[{fw}]") for c in CONFIGS for fw in FRAMEWORKS]


@pytest.mark.slow
@pytest.mark.parametrize("config, framework", NEGATIVE)
def test_the_other_convention_does_not_match_within_five_steps(config, framework):
    """Same hyper-parameters on both sides (epsilon and rho pinned), float64: only the formula
    differs. (SGD momentum's forms are equal in exact arithmetic; in float64 they still part at
    step 2 because Keras rounds the momentum to float32.)"""
    spec = spec_of(config, **{"sgd": {}, "adam": {"epsilon": 1e-7}, "rmsprop": {"rho": 0.9, "epsilon": 1e-7}}[
        CONFIGS[config][0]])
    other = next(c for c in FRAMEWORKS if c != framework)
    reference = reference_steps(spec, other, "float64")[:5]
    native = FRAMEWORK_STEPS[framework](spec, "float64")[:5]
    assert first_mismatch(reference, native, TOLERANCES["float64"]) is not None


@pytest.mark.slow
def test_defaults_are_the_installed_frameworks_defaults():
    import torch

    _, keras = keras_tf.import_keras()
    keras_classes = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}
    for name, cls in keras_classes.items():
        signature = inspect.signature(cls).parameters
        for option, value in DEFAULTS[name]["keras"].items():
            assert signature[option].default == value, (name, option)
    torch_names = {"epsilon": "eps", "rho": "alpha"}
    torch_classes = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}
    for name, cls in torch_classes.items():
        signature = inspect.signature(cls).parameters
        for option, value in DEFAULTS[name]["torch"].items():
            if option in ("beta_1", "beta_2"):
                assert signature["betas"].default[("beta_1", "beta_2").index(option)] == value
            else:
                assert signature[torch_names.get(option, option)].default == value, (name, option)


def test_omitted_options_take_the_conventions_defaults():
    adam, rmsprop = OptimizerSpec("adam", 0.001), OptimizerSpec("rmsprop", 0.001, {"momentum": 0.5})
    assert hyperparameters(adam, convention="keras")["epsilon"] == 1e-7
    assert hyperparameters(adam, convention="torch")["epsilon"] == 1e-8
    assert hyperparameters(rmsprop, convention="keras") == {
        "learning_rate": 0.001, "rho": 0.9, "momentum": 0.5, "epsilon": 1e-7, "centered": False}
    assert hyperparameters(rmsprop, convention="torch") == {
        "learning_rate": 0.001, "rho": 0.99, "momentum": 0.5, "epsilon": 1e-8, "centered": False}
    assert make_optimizer(adam, convention="torch").epsilon == 1e-8


# --- through the adapters: the compiled Keras loop, torch's loop, the recorded convention ----

TINY = {
    "name": "tiny-optimizer",
    "data": {"X": [[0.1, -0.4, 0.7], [0.5, 0.2, -0.3], [-0.6, 0.8, 0.1], [0.3, -0.2, -0.9],
                   [0.9, 0.4, 0.2], [-0.1, -0.7, 0.5], [0.2, 0.6, -0.8], [-0.5, 0.1, 0.4]],
             "y": [[0.3], [-0.2], [0.5], [0.1], [0.8], [-0.4], [0.0], [0.2]]},
    "model": {"input_dim": 3, "layers": [
        {"units": 4, "activation": "tanh", "initializer": {"name": "glorot_uniform", "seed": 1}},
        {"units": 1, "activation": "linear", "initializer": {"name": "glorot_uniform", "seed": 2}}]},
    "training": {"loss": "mse", "batch_size": 4, "epochs": 10},
}


def tiny_scenario(optimizer: dict):
    return parse_scenario({**TINY, "training": {**TINY["training"], "optimizer": optimizer}}, path=Path("tiny.toml"))


ADAPTER_CASES = [pytest.param(c, fw, d, id=f"{c}[{fw}-{d}]")
                 for c in ("sgd-nesterov", "adam-amsgrad", "rmsprop-centered")
                 for fw in FRAMEWORKS for d in ("float64", "float32")]


@pytest.mark.slow
@pytest.mark.parametrize("config, framework, dtype", ADAPTER_CASES)
def test_training_runs_agree_when_the_reference_is_pinned_to_the_framework(config, framework, dtype):
    name, options = CONFIGS[config]
    plan = make_plan(tiny_scenario({"name": name, "learning_rate": LEARNING_RATES[name], **options,
                                    "convention": framework}), dtype)
    reference, native = adapter("numpy").run(plan), adapter(framework).run(plan)
    assert reference.convention == native.convention == framework
    assert native.steps == reference.steps == 20
    a, b = ([{k: v[t] for k, v in run.params.items()} for t in range(run.steps)] for run in (reference, native))
    assert first_mismatch(a, b, DEFAULT_TOLERANCES[dtype]) is None  # the gradients' summation order differs too


@pytest.mark.slow
@pytest.mark.parametrize("framework, optimizer", [("keras", "adam"), ("torch", "rmsprop")])
def test_a_framework_run_rejects_a_convention_it_cannot_express(framework, optimizer):
    other = next(c for c in FRAMEWORKS if c != framework)
    plan = make_plan(tiny_scenario({"name": optimizer, "learning_rate": 0.01, "convention": other}), "float64")
    with pytest.raises(BadInput) as info:
        adapter(framework).run(plan)
    message = str(info.value)
    assert message.startswith("tiny.toml: training.optimizer.convention: expected a convention")
    assert f"received '{other}'" in message and "\n" not in message


@pytest.mark.slow
def test_a_pinned_convention_is_harmless_when_the_conventions_agree():
    plan = make_plan(tiny_scenario({"name": "sgd", "learning_rate": 0.1, "convention": "torch"}), "float64")
    assert keras_tf.build_optimizer(keras_tf.import_keras()[1], plan.scenario.training.optimizer)[1] == "common"
    assert numpy_reference.build_optimizer(plan.scenario.training.optimizer).convention == "common"


# --- conventions ---------------------------------------------------------------

def test_difference_names_the_formula_and_omitted_defaults():
    assert convention_difference(OptimizerSpec("sgd", 0.1)) is None
    assert convention_difference(OptimizerSpec("sgd", 0.1, {"momentum": 0.0})) is None
    assert convention_difference(OptimizerSpec("sgd", 0.1, {"momentum": 0.9})).startswith("SGD momentum form")
    nesterov = OptimizerSpec("sgd", 0.1, {"momentum": 0.9, "nesterov": True})
    assert convention_difference(nesterov).startswith("SGD Nesterov")
    adam = convention_difference(OptimizerSpec("adam", 0.1))
    assert adam.startswith("Adam epsilon placement") and "and default epsilon 1e-7 vs 1e-8; " in adam
    assert adam.endswith("beta_1 and beta_2 rounded to float32 in beta**t in float64 runs by Keras on TensorFlow "
                         "(exact on JAX and torch)")  # Keras on TensorFlow against torch: the rounding too
    assert "default" not in convention_difference(OptimizerSpec("adam", 0.1, {"epsilon": 1e-8}))
    assert convention_difference(OptimizerSpec("rmsprop", 0.1)) == (
        "RMSprop epsilon inside vs outside the square root and default rho 0.9 vs alpha 0.99, epsilon 1e-7 vs 1e-8")
    assert convention_difference(OptimizerSpec("rmsprop", 0.1, {"rho": 0.9, "epsilon": 1e-7})) == (
        "RMSprop epsilon inside vs outside the square root")


def test_native_convention_and_pin():
    adam, sgd = OptimizerSpec("adam", 0.1, {"convention": "torch"}), OptimizerSpec("sgd", 0.1)
    assert [adapter(fw).native_convention(adam) for fw in FRAMEWORKS] == ["keras", "torch"]
    assert [adapter(fw).native_convention(sgd) for fw in FRAMEWORKS] == ["common", "common"]
    assert pinned(adam) == "torch" and pinned(sgd) is None
    check_expressible(adapter("numpy"), adam, file="x.toml")
    check_expressible(adapter("torch"), adam, file="x.toml")
    with pytest.raises(BadInput, match=r"keras\.optimizers\.Adam computes the 'keras' convention"):
        check_expressible(adapter("keras"), adam, file="x.toml")


# --- bad input -----------------------------------------------------------------

VALID = {
    "name": "x", "data": {"X": [[1.0], [2.0]], "y": [[1.0], [2.0]]},
    "model": {"input_dim": 1, "layers": [{"units": 1, "kernel": [[0.5]], "bias": [0.0]}]},
    "training": {"loss": "mse", "epochs": 1},
}

BAD_OPTIMIZERS = {
    "unknown-option": ({"name": "adam", "learning_rate": 0.1, "beta_3": 0.5}, "beta_3", "one of the known fields"),
    "negative-learning-rate": ({"name": "adam", "learning_rate": -1.0}, "learning_rate", "a number >= 0.0"),
    "beta_1-one": ({"name": "adam", "learning_rate": 0.1, "beta_1": 1.0}, "beta_1", "a number < 1.0; received 1.0"),
    "beta_1-1.5": ({"name": "adam", "learning_rate": 0.1, "beta_1": 1.5}, "beta_1", "a number < 1.0; received 1.5"),
    "rho-negative": ({"name": "rmsprop", "learning_rate": 0.1, "rho": -0.1}, "rho", "a number >= 0.0"),
    "epsilon-negative": ({"name": "rmsprop", "learning_rate": 0.1, "epsilon": -1e-7}, "epsilon", "a number >= 0.0"),
    "momentum-one": ({"name": "sgd", "learning_rate": 0.1, "momentum": 1.0}, "momentum", "a number < 1.0"),
    "amsgrad-string": ({"name": "adam", "learning_rate": 0.1, "amsgrad": "yes"}, "amsgrad", "true or false"),
    "convention-jax": ({"name": "adam", "learning_rate": 0.1, "convention": "jax"}, "convention",
                       "one of ['keras', 'keras-unrounded', 'torch']; received 'jax'"),
    "nesterov-without-momentum": ({"name": "sgd", "learning_rate": 0.1, "nesterov": True}, "nesterov",
                                  "nesterov = true only with momentum > 0"),
    "option-of-another-optimizer": ({"name": "sgd", "learning_rate": 0.1, "beta_1": 0.9}, "beta_1",
                                    "one of the known fields"),
}


@pytest.mark.parametrize("case", list(BAD_OPTIMIZERS))
def test_bad_optimizer_is_one_line_naming_file_and_field(case):
    optimizer, field, expected = BAD_OPTIMIZERS[case]
    raw = {**VALID, "training": {**VALID["training"], "optimizer": optimizer}}
    with pytest.raises(BadInput) as info:
        parse_scenario(raw, path=Path("x.toml"))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"x.toml: training.optimizer.{field}: expected "), message
    assert expected in message, message


def test_options_are_kept_with_the_convention():
    raw = {**VALID, "training": {**VALID["training"], "optimizer": {
        "name": "rmsprop", "learning_rate": 0.01, "rho": 0.8, "centered": True, "convention": "torch"}}}
    spec = parse_scenario(raw, path=Path("x.toml")).training.optimizer
    assert spec.options == {"rho": 0.8, "centered": True, "convention": "torch"}


@pytest.mark.parametrize("build, received", [
    (lambda: SGD(learning_rate=-1, momentum=0.0, nesterov=False, convention="keras"), "learning_rate=-1"),
    (lambda: SGD(learning_rate=0.1, momentum=0.0, nesterov=True, convention="torch"), "momentum=0.0"),
    (lambda: Adam(learning_rate=0.1, beta_1=1.0, beta_2=0.999, epsilon=1e-7, amsgrad=False, convention="keras"),
     "beta_1=1.0"),
    (lambda: Adam(learning_rate=0.1, beta_1=0.9, beta_2=0.999, epsilon=-1.0, amsgrad=False, convention="keras"),
     "epsilon=-1.0"),
    (lambda: RMSprop(learning_rate=0.1, rho=-0.1, momentum=0.0, epsilon=1e-7, centered=False, convention="torch"),
     "rho=-0.1"),
    (lambda: RMSprop(learning_rate=0.1, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, convention="jax"),
     "convention='jax'"),
    (lambda: make_optimizer(OptimizerSpec("adam", 0.1, {"amsgrad": "yes"}), convention="keras"), "amsgrad='yes'"),
], ids=["learning_rate", "nesterov", "beta_1", "epsilon", "rho", "convention", "amsgrad-type"])
def test_reference_validates_like_keras(build, received):
    with pytest.raises(ValueError, match=f"Received: {received}"):
        build()
