"""Keras' dtype rule on its JAX and torch backends, found by measurement and explained by a control run.

Measured on the pinned versions (keras 3.15, jax 0.10, torch 2.13): on these backends Keras' type
promotion returns 32-bit results from some 64-bit operations, so a float64 run computes part of its
step in float32; and they cast Python-float hyper-parameters exactly, where Keras on TensorFlow
rounds momentum and the betas to float32 (the reference's "keras-unrounded" convention against
"keras"). Real workers, real Keras; one fault planted through the runner's own runs.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.answers import verdicts
from harness.answers.key_file import load_key
from harness.answers.verdicts import HARNESS_FAULT, UNANSWERED, check_entry
from harness.judge.compare import AGREE, DISAGREE, EXPLAINED, compare
from harness.judge.controls import ControlRun
from harness.pipeline import diagnose, run_scenario
from harness.run import runner
from harness.run.labels import control_label
from harness.run.trajectory import Trajectory
from harness.spec.scenario import Scenario, load_scenarios

pytestmark = pytest.mark.slow  # Keras on two more backends, each in a worker process

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
BACKENDS = ("numpy", "keras", "keras@jax", "keras@torch")


def _tiny_mlp_with_momentum() -> Scenario:
    """tiny-mlp (sigmoid then linear, mse, mini-batches) with SGD momentum 0.9: the Keras conventions
    on TensorFlow and on the other backends then differ in float64 (momentum rounded or not)."""
    [s] = load_scenarios(SCENARIOS / "tiny-mlp.toml")
    optimizer = replace(s.training_spec.optimizer, options={"momentum": 0.9})
    return replace(s, training=replace(s.training_spec, optimizer=optimizer))


@pytest.fixture(scope="module")
def momentum_result() -> runner.ScenarioResult:
    return run_scenario(_tiny_mlp_with_momentum(), frameworks=BACKENDS)


def test_the_rule_is_measured_and_its_control_run_explains_the_difference(momentum_result):
    result = momentum_result
    jax_run, torch_run = result.runs[("keras@jax", "float64")], result.runs[("keras@torch", "float64")]
    # measured in the run's own first step: where each backend narrowed
    assert jax_run.narrowed_ops == {"keras.src.backend.jax.numpy.mean": "float32"}
    assert torch_run.narrowed_ops["keras.src.backend.torch.numpy.matmul"] == "float32"
    assert torch_run.computed_dtypes["loss"] == "float32"  # the rule reaches the loss itself
    for label, reference in (("keras@jax", "numpy[keras-unrounded]"), ("keras@torch", "numpy[keras-unrounded]")):
        c = result.comparison(reference, label, "float64")
        assert c is not None and c.state == EXPLAINED, c.verdict
        assert f"with it off, {label}[64-bit] agrees with {reference}" in c.expected_difference
        control = result.runs[(control_label(label), "float64")]
        assert control.ok and control.narrowed_ops == {} and set(control.computed_dtypes.values()) == {"float64"}
        bridge = result.comparison(reference, control_label(label), "float64")
        assert bridge is not None and bridge.state == AGREE and bridge.max_abs < 1e-13
        assert (control_label(label), "float32") not in result.runs  # float32 runs agree: no control
    assert "keras.src.backend.jax.numpy.mean" in result.comparison("keras", "keras@jax", "float64").expected_difference
    assert result.ok and result.dtype_faults == []  # keras@torch's float32 loss is its rule, confirmed
    assert all(c.state == AGREE for c in result.comparisons if c.dtype == "float32")


def test_keras_on_tensorflow_rounds_momentum_and_the_other_backends_do_not(momentum_result):
    """The measurement behind the two Keras conventions: with the narrowing rule off, Keras on JAX
    and torch agree with the unrounded arithmetic and not with TensorFlow's; the reference pair shows
    what the rounding alone costs."""
    result = momentum_result
    tol = result.scenario.tolerances["float64"]
    rounded, unrounded = result.runs[("numpy[keras]", "float64")], result.runs[("numpy[keras-unrounded]", "float64")]
    assert compare(rounded, result.runs[("keras", "float64")], tol).agree
    for label in ("keras@jax", "keras@torch"):
        control = result.runs[(control_label(label), "float64")]
        assert compare(unrounded, control, tol).agree
        assert not compare(rounded, control, tol).agree
    cost = result.comparison("numpy[keras]", "numpy[keras-unrounded]", "float64")
    assert cost.state == EXPLAINED and "momentum rounded to float32" in cost.expected_difference
    assert 1e-12 < cost.max_abs < 1e-6
    assert result.comparison("numpy[keras]", "numpy[keras-unrounded]", "float32").state == AGREE


def test_the_diagnosis_names_the_rule_confirmed_by_the_control_run(momentum_result):
    diagnoses = {(d.comparison.pair, d.comparison.dtype): d for d in diagnose(momentum_result)}
    d = diagnoses[("numpy[keras-unrounded]-keras@jax", "float64")]
    assert d.cause_name == "backend dtype rule"
    assert isinstance(d.confirmed_by, ControlRun) and d.confirmed_by.agrees
    assert d.confirmed_by.summary.startswith("keras@jax with Keras' rule that returns 32-bit results")
    both = diagnoses[("keras@jax-keras@torch", "float64")]
    assert both.cause_name == "backend dtype rule" and "keras@torch with Keras' rule" in both.confirmed_by.describe()


def test_a_defect_beside_the_rule_is_not_explained_by_it(monkeypatch):
    """Planted: keras@jax's float64 parameters off by 1e-9 relative from step 3, in its run and in its
    control run alike (a defect of the implementation, not of its dtype rule). The control then
    disagrees with the reference from step 3, so nothing is explained: the pairs disagree, the
    result fails, and the diagnosis does not name the rule."""
    real = runner.run_all

    def faulty(jobs, **kwargs):
        runs = real(jobs, **kwargs)
        for (framework, plan), run in zip(jobs, runs):
            if framework == "keras@jax" and plan.dtype == "float64" and run.ok:
                for values in run.params.values():
                    values[3:] *= 1 + 1e-9
        return runs

    monkeypatch.setattr(runner, "run_all", faulty)
    [s] = load_scenarios(SCENARIOS / "tiny-mlp.toml")
    result = run_scenario(s, frameworks=("numpy", "keras", "keras@jax"), dtypes=("float64",))
    bridge = result.comparison("numpy", control_label("keras@jax"), "float64")
    assert bridge is not None and bridge.state == DISAGREE and bridge.first_divergent_step == 3
    pair = result.comparison("numpy", "keras@jax", "float64")
    assert pair.state == DISAGREE and not pair.explained and pair.expected_difference == ""
    assert not result.ok
    d = next(d for d in diagnose(result) if d.comparison is pair)
    assert d.cause_name != "backend dtype rule"
    assert d.suspect is not None and d.suspect.label == "keras@jax"


def test_a_run_that_agrees_gets_no_control_run():
    """Forward-only sigmoid on Keras on JAX narrows nothing and agrees: no control is made."""
    [s] = load_scenarios(SCENARIOS / "tiny-linear.toml")
    forward = replace(s, training=None)
    result = run_scenario(forward, frameworks=("numpy", "keras@jax"), dtypes=("float64",))
    assert result.state == AGREE
    assert all("[64-bit]" not in label for label, _ in result.runs)


# --- answer keys: the same control for each answer ----------------------------------

RULE_KEY = '''title = "backend rules"

[[answer]]
id = "tanh"
compute = "activation"
function = "tanh"
z = [[0.5, -1.25], [2.0, 0.1]]

[[answer]]
id = "loss"
compute = "loss"
loss = "mse"
y_true = [1.0, 2.0, 0.3]
y_pred = [1.5, 2.5, 0.7]

[[answer]]
id = "gradient"
compute = "gradient"
X = [[1, 2], [3, 1], [1, 1]]
y = [[4.6], [6.1], [3.1]]
w = [[0.3], [0.7]]
b = [0.1]
loss = "mse"
'''


def _key_entries(tmp_path):
    path = tmp_path / "key.toml"
    path.write_text(RULE_KEY)
    return load_key(path).entries


def test_answers_cross_checked_by_keras_on_jax_and_torch_with_their_rule_off(tmp_path):
    """Each float64 answer where a backend's rule moves its value is computed again with the rule
    off; that control agrees with the reference and stands in for it, and the warning says so."""
    for entry in _key_entries(tmp_path):
        result = check_entry(entry, frameworks=("numpy", "keras@jax", "keras@torch"))
        assert result.verdict == UNANSWERED, (entry.id, result.message)  # computed, no harness fault
        notes = [w for w in result.warnings if "with that rule off it agrees" in w]
        assert notes, (entry.id, result.warnings)
        assert all(w.split(" differs")[0] in ("keras@jax", "keras@torch") for w in notes)


def test_an_answer_a_backend_gets_wrong_beside_its_rule_is_a_harness_fault(tmp_path, monkeypatch):
    """Planted: keras@jax's values off by 1e-9 relative, with its rule on and off alike (a defect of
    the implementation): the control disagrees too, so the cross-check fails, naming keras@jax."""
    real = verdicts.compute_all

    def faulty(question, *, frameworks, keep_64_bit=False):
        out = real(question, frameworks=frameworks, keep_64_bit=keep_64_bit)
        if isinstance(out.get("keras@jax"), dict):
            out["keras@jax"] = {part: value * (1 + 1e-9) for part, value in out["keras@jax"].items()}
        return out

    monkeypatch.setattr(verdicts, "compute_all", faulty)
    [tanh, *_] = _key_entries(tmp_path)
    result = check_entry(tanh, frameworks=("numpy", "keras@jax"))
    assert result.verdict == HARNESS_FAULT
    assert result.message.startswith("numpy and keras@jax disagree on value by")
    assert not any("with that rule off it agrees" in w for w in result.warnings)


def test_a_control_run_that_crashes_explains_nothing(monkeypatch):
    """Planted: the control run crashes (as it would if a Keras release dropped the promotion table
    it turns off). Nothing is explained: the pair disagrees and the result is not ok."""
    real = runner.run_all

    def crashing(jobs, **kwargs):
        runs = real(jobs, **kwargs)
        return [Trajectory.crashed(framework, plan.dtype, AttributeError("no BIT64_TO_BIT32_DTYPE"))
                if plan.scenario.keep_64_bit else run for (framework, plan), run in zip(jobs, runs)]

    monkeypatch.setattr(runner, "run_all", crashing)
    [s] = load_scenarios(SCENARIOS / "tiny-mlp.toml")
    result = run_scenario(s, frameworks=("numpy", "keras@jax"), dtypes=("float64",))
    control = result.runs[(control_label("keras@jax"), "float64")]
    assert control.status == "crashed" and "BIT64_TO_BIT32_DTYPE" in control.message
    pair = result.comparison("numpy", "keras@jax", "float64")
    assert pair.state == DISAGREE and not result.ok and result.rules == {}
