"""The "keras-unrounded" optimizer convention: Keras' formulas with every hyper-parameter cast
exactly to the run's dtype (Keras on JAX and torch), beside "keras" (Keras on TensorFlow, which
rounds SGD's momentum and Adam's betas in beta**t to float32 even in float64) and "torch".

The reference's two Keras conventions differ by that rounding and nothing else; the harness
names the difference (``convention_difference``), labels an implementation by the arithmetic it computes
(``native``) and accepts a pin an adapter computes the same arithmetic for (``check_expressible``).
"""
from __future__ import annotations

import itertools
from math import sqrt
from pathlib import Path

import numpy as np
import pytest

from harness.answers.question_fields import parse_question
from harness.answers.questions import ScenarioQuestion
from harness.errors import BadInput
from harness.run.adapters import adapter, check_expressible
from harness.run.plan import make_plan
from harness.spec.catalogue import catalogue_dir, catalogue_scenarios
from harness.spec.conventions import COMMON, convention_difference, native, optimizer_class
from harness.spec.fields import Table
from harness.spec.scenario import OptimizerSpec, load_scenarios
from harness.spec.tolerance import DEFAULT_TOLERANCES
from reference.optimizers import CONVENTIONS, hyperparameters, make_optimizer
from tests.test_answers_conventions import ADAM_SCENARIO
from tests.test_optimizers import CONFIGS, LEARNING_RATES, f32, first_mismatch, reference_steps, spec_of

# Every optimizer configuration of the optimizer tests, plus plain SGD (the same in all three).
SPECS = {**{c: spec_of(c) for c in CONFIGS}, "sgd": OptimizerSpec("sgd", LEARNING_RATES["sgd"])}
ROUNDS = {"sgd-momentum", "sgd-nesterov", "adam", "adam-amsgrad"}  # what Keras on TensorFlow rounds

MOMENTUM_ROUNDED = "momentum rounded to float32 in float64 runs by Keras on TensorFlow (exact on JAX and torch)"
BETAS_ROUNDED = ("beta_1 and beta_2 rounded to float32 in beta**t in float64 runs by Keras on TensorFlow "
                 "(exact on JAX and torch)")


def two_steps(spec: OptimizerSpec, convention: str) -> list[float]:
    """w = 1.0 in float64 after the gradients 2.0 then -0.05."""
    optimizer, w, out = make_optimizer(spec, convention=convention), {"w": np.array([1.0])}, []
    for g in (2.0, -0.05):
        optimizer.step(w, {"w": np.array([g])})
        out.append(float(w["w"][0]))
    return out


def keras_sgd_by_hand(momentum: float, *, nesterov: bool) -> list[float]:
    """Keras' SGD rule in Python floats, in its operation order, at learning rate 0.1."""
    w, v, out = 1.0, 0.0, []
    for g in (2.0, -0.05):
        v = v * momentum - g * 0.1
        w = w + (v * momentum - g * 0.1 if nesterov else v)
        out.append(w)
    return out


def keras_adam_by_hand(beta_1: float, beta_2: float, *, amsgrad: bool) -> list[float]:
    """Keras' Adam rule in Python floats at learning rate 0.1 and epsilon 0.1; ``beta_1`` and
    ``beta_2`` are the bases of the powers ``beta**t`` (the moments always weigh by the exact
    ``1 - 0.9`` and ``1 - 0.999``)."""
    w, m, v, v_max, out = 1.0, 0.0, 0.0, 0.0, []
    for t, g in enumerate((2.0, -0.05), start=1):
        alpha = 0.1 * sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        m = m + (g - m) * (1 - 0.9)
        v = v + (g * g - v) * (1 - 0.999)
        v_max = max(v_max, v)
        w = w - (m * alpha) / (sqrt(v_max if amsgrad else v) + 0.1)
        out.append(w)
    return out


# --- the reference: the rounding, and only the rounding -------------------------

@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
def test_sgd_keras_unrounded_is_keras_with_the_exact_momentum(nesterov):
    spec = OptimizerSpec("sgd", 0.1, {"momentum": 0.9, "nesterov": nesterov})
    keras, unrounded = two_steps(spec, "keras"), two_steps(spec, "keras-unrounded")
    assert keras == keras_sgd_by_hand(f32(0.9), nesterov=nesterov)  # bitwise: the same operations
    assert unrounded == keras_sgd_by_hand(0.9, nesterov=nesterov)
    assert keras[1] != unrounded[1]
    assert make_optimizer(spec, convention="keras-unrounded").convention == "keras-unrounded"


@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
def test_adam_keras_unrounded_is_keras_with_the_exact_beta_powers(amsgrad):
    spec = OptimizerSpec("adam", 0.1, {"epsilon": 0.1, "amsgrad": amsgrad})
    keras, unrounded = two_steps(spec, "keras"), two_steps(spec, "keras-unrounded")
    assert keras == keras_adam_by_hand(f32(0.9), f32(0.999), amsgrad=amsgrad)  # bitwise
    assert unrounded == keras_adam_by_hand(0.9, 0.999, amsgrad=amsgrad)
    assert keras[0] != unrounded[0]  # from step 1: 1 - beta**1 is already the rounded beta's


@pytest.mark.parametrize("config", list(SPECS))
def test_in_float32_keras_and_keras_unrounded_are_bit_identical(config):
    keras = reference_steps(SPECS[config], "keras", "float32")
    unrounded = reference_steps(SPECS[config], "keras-unrounded", "float32")
    for t, (a, b) in enumerate(zip(keras, unrounded)):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"step {t}, {k}")


@pytest.mark.parametrize("config", list(SPECS))
def test_in_float64_they_differ_exactly_where_keras_on_tensorflow_rounds(config):
    """Bit-identical for plain SGD and RMSprop. SGD momentum and Adam part by the rounding (float32
    moves 0.9 and 0.999 by under 3e-8 relative): after 50 steps about 1e-6 at parameters up to ~9,
    far beyond float64's tolerance, far below the Keras-torch formula differences."""
    keras = reference_steps(SPECS[config], "keras", "float64")
    unrounded = reference_steps(SPECS[config], "keras-unrounded", "float64")
    identical = all(np.array_equal(a[k], b[k]) for a, b in zip(keras, unrounded) for k in a)
    assert identical is (config not in ROUNDS)
    assert identical is (convention_difference(SPECS[config], "keras", "keras-unrounded") is None)
    assert (first_mismatch(keras, unrounded, DEFAULT_TOLERANCES["float64"]) is None) is identical
    assert max(float(np.max(np.abs(a[k] - b[k]))) for a, b in zip(keras, unrounded) for k in a) < 1e-5


def test_keras_unrounded_takes_keras_defaults():
    adam, rmsprop = OptimizerSpec("adam", 0.001), OptimizerSpec("rmsprop", 0.001)
    for spec in (adam, rmsprop):
        assert hyperparameters(spec, convention="keras-unrounded") == hyperparameters(spec, convention="keras")
    assert make_optimizer(adam, convention="keras-unrounded").epsilon == 1e-7
    assert make_optimizer(OptimizerSpec("sgd", 0.1), convention="keras-unrounded").convention == COMMON
    assert CONVENTIONS == ("keras", "keras-unrounded", "torch")


# --- the harness: naming, labelling and accepting the convention -----------------

@pytest.mark.parametrize("config", list(SPECS))
def test_difference_between_each_pair_of_conventions(config):
    spec = SPECS[config]
    expected = {"sgd-momentum": MOMENTUM_ROUNDED, "sgd-nesterov": MOMENTUM_ROUNDED,
                "adam": BETAS_ROUNDED, "adam-amsgrad": BETAS_ROUNDED}.get(config)
    assert (convention_difference(spec, "keras", "keras-unrounded")
            == convention_difference(spec, "keras-unrounded", "keras") == expected)
    formula = convention_difference(spec, "keras-unrounded", "torch")  # the formulas alone
    assert convention_difference(spec, "torch", "keras-unrounded") == formula
    # Keras on TensorFlow against torch: the formulas and the rounding
    both = "; ".join(p for p in (formula, expected) if p) or None
    assert (convention_difference(spec) == convention_difference(spec, "keras", "torch")
            == convention_difference(spec, "torch", "keras") == both)
    assert all(convention_difference(spec, c, c) is None for c in CONVENTIONS)
    # keras vs torch (the default) is None exactly when all three conventions compute the same
    pairs = itertools.combinations(CONVENTIONS, 2)
    assert (convention_difference(spec) is None) is all(convention_difference(spec, a, b) is None for a, b in pairs)
    assert (convention_difference(spec) is None) is (config == "sgd")


def test_difference_rejects_an_unknown_convention():
    with pytest.raises(ValueError, match="Received: convention='jax'"):
        convention_difference(SPECS["adam"], "keras", "jax")


def catalogue_with_a_difference():
    return [pytest.param(s, id=s.name) for s in catalogue_scenarios()
            if s.training is not None and convention_difference(s.training.optimizer) is not None]


@pytest.mark.parametrize("scenario", catalogue_with_a_difference())
def test_the_default_difference_is_the_phrase_of_the_committed_reports(scenario):
    report = catalogue_dir().parent / "reports" / f"{scenario.name}.md"
    assert f"{convention_difference(scenario.training.optimizer)}: " in report.read_text()


def test_native_labels_the_arithmetic_computed():
    sgd, rmsprop, adam = SPECS["sgd"], SPECS["rmsprop"], SPECS["adam"]
    assert [native(sgd, c) for c in CONVENTIONS] == [COMMON] * 3
    assert [native(rmsprop, c) for c in CONVENTIONS] == ["keras", "keras", "torch"]  # no second Keras run
    assert [native(adam, c) for c in CONVENTIONS] == ["keras", "keras-unrounded", "torch"]
    assert native(SPECS["sgd-momentum"], "keras-unrounded") == "keras-unrounded"
    reference = adapter("numpy")
    assert reference.native_convention(OptimizerSpec("rmsprop", 0.1, {"convention": "keras-unrounded"})) == "keras"
    assert reference.native_convention(OptimizerSpec("adam", 0.1, {"convention": "keras-unrounded"})) \
        == "keras-unrounded"
    assert adapter("keras").native_convention(adam) == "keras" and adapter("torch").native_convention(adam) == "torch"


def pin(config: str, convention: str) -> OptimizerSpec:
    spec = SPECS[config]
    return OptimizerSpec(spec.name, spec.learning_rate, {**spec.options, "convention": convention})


@pytest.mark.parametrize("implementation, config, convention, ok", [
    ("unrounded", "rmsprop", "keras", True),  # the same arithmetic
    ("keras", "rmsprop", "keras-unrounded", True),
    ("torch", "rmsprop", "keras-unrounded", False),
    ("unrounded", "adam", "keras", False),
    ("keras", "adam", "keras-unrounded", False),
    ("unrounded", "adam", "keras-unrounded", True),
    ("numpy", "adam", "keras-unrounded", True),
    ("keras", "sgd-momentum", "keras-unrounded", False),
    ("unrounded", "sgd-momentum", "torch", False),
    *[(a, "sgd", "keras-unrounded", True) for a in ("unrounded", "keras", "torch", "numpy")],  # all agree
])
def test_check_expressible_accepts_a_pin_computing_the_same_arithmetic(implementation, config, convention, ok):
    impl = adapter("keras@jax" if implementation == "unrounded" else implementation)  # Keras on JAX: unrounded
    spec = pin(config, convention)
    if ok:
        check_expressible(impl, spec, file="x.toml")
        return
    with pytest.raises(BadInput) as info:
        check_expressible(impl, spec, file="x.toml")
    cls = f"{impl.optimizer_module}.{optimizer_class(spec)}"
    assert str(info.value) == (f"x.toml: training.optimizer.convention: expected a convention {impl.name} can "
                               f"express ({cls} computes the {impl.native_convention(spec)!r} convention); "
                               f"received {convention!r}")


# --- a scenario file pinning it, run by the reference; an answer pinning it ------

def scenario_file(tmp_path: Path, optimizer: str) -> Path:
    """The tiny Adam scenario of the answer tests (4 rows, full batch, 6 steps) with ``optimizer``."""
    path = tmp_path / "tiny.toml"
    text = ADAM_SCENARIO.replace('{ name = "adam", learning_rate = 0.01, epsilon = 0.1 }', f"{{ {optimizer} }}")
    assert text != ADAM_SCENARIO
    path.write_text(text)
    return path


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_scenario_pinning_keras_unrounded_loads_and_the_reference_runs_it(tmp_path, dtype):
    runs = {}
    for convention in ("keras", "keras-unrounded"):
        [scenario] = load_scenarios(scenario_file(tmp_path, f'name = "adam", learning_rate = 0.01, '
                                                            f'convention = "{convention}"'))
        assert scenario.training.optimizer.options == {"convention": convention}
        runs[convention] = adapter("numpy").run(make_plan(scenario, dtype))
    run = runs["keras-unrounded"]
    assert run.ok and run.steps == 6 and run.convention == "keras-unrounded"
    same = all(np.array_equal(runs["keras"].params[k], run.params[k]) for k in run.params)
    assert same is (dtype == "float32")  # float64: the betas' rounding in beta**t


def test_an_rmsprop_scenario_pinning_keras_unrounded_runs_as_keras(tmp_path):
    [scenario] = load_scenarios(scenario_file(tmp_path, 'name = "rmsprop", learning_rate = 0.01, '
                                                        'convention = "keras-unrounded"'))
    check_expressible(adapter("keras"), scenario.training.optimizer, file=scenario.path)
    run = adapter("numpy").run(make_plan(scenario, "float64"))
    assert run.ok and run.convention == "keras"  # labelled as the arithmetic it computes


def question(tmp_path: Path, optimizer: str, convention: str) -> ScenarioQuestion:
    scenario_file(tmp_path, optimizer)
    t = Table({"scenario": "tiny.toml", "quantity": "params", "convention": convention}, file="key.toml",
              where="answer[a]")
    parsed = parse_question("scenario", t, key_dir=tmp_path)
    assert isinstance(parsed, ScenarioQuestion)
    return parsed


def test_an_answer_may_pin_keras_unrounded_where_the_scenario_pins_the_same_arithmetic(tmp_path):
    rmsprop = 'name = "rmsprop", learning_rate = 0.01, convention = "keras"'
    assert question(tmp_path, rmsprop, "keras-unrounded").convention == "keras-unrounded"
    adam = 'name = "adam", learning_rate = 0.01, convention = "keras"'
    with pytest.raises(BadInput, match=r"answer\[a\]\.convention: expected the scenario's own convention 'keras'"):
        question(tmp_path, adam, "keras-unrounded")
    unpinned = question(tmp_path, 'name = "adam", learning_rate = 0.01', "keras-unrounded")
    assert unpinned.scenario.training.optimizer.options == {"convention": "keras-unrounded"}
