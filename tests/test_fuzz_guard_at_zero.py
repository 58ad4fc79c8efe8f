"""The fuzzer's one unexplained finding, explained: categorical cross-entropy under the "torch" guard
(max(log p, -100)) with a softmax probability exactly 0. Keras and torch differentiate the log, then
the clamp, by autograd, and give nan there (0 / 0, 0 x inf); the reference gives the guard's
derivative, 0. The cause (``harness.judge.guard_at_zero``) is confirmed by the reference's
backpropagation with autograd's rule, and a nan from anything else is not explained by it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.fuzz.oracle import EXPLAINED, FINDING, judge_example
from harness.fuzz.space import Example
from harness.judge.causes.evidence import Finding
from harness.judge.causes.guard_at_zero import FORMS, NAME, PRODUCT, QUOTIENT, autograd_gradient
from harness.judge.compare import DISAGREE
from harness.judge.compare import EXPLAINED as EXPLAINED_STATE
from harness.pipeline import diagnose, run_scenario
from harness.render.sections import agreement_section
from harness.run.adapters import torch_eager
from harness.run.adapters.keras_tf import import_keras
from harness.run.adapters.workers import inline
from harness.spec.fields import read_toml
from harness.spec.scenario import load_scenarios, parse_scenario
from tests.on_first_use import torch

FILE = Path(__file__).resolve().parent / "scenarios" / "cce-torch-guard-p-zero.toml"
FRAMEWORKS = ("numpy", "keras", "torch")
P = np.array([[0.0, 1e-50, 0.5, 1e-320]])  # exactly 0; the clamp binds at p > 0; inside; 1/p overflows
Y = np.array([[0.0, 1.0, 1.0, 1.0]])


def test_autograd_rule_is_nan_only_at_zero_and_where_tensorflow_s_reciprocal_overflows() -> None:
    """The rule as derived: 0 where the clamp binds at p > 0, -y / (rows p) inside, nan at p = 0 in
    both forms, and nan for a subnormal p with 1/p = inf in TensorFlow's form only."""
    q, prod = (autograd_gradient(Y, P, FORMS[f]) for f in (QUOTIENT, PRODUCT))
    for g in (q, prod):
        assert np.isnan(g[0, 0]) and g[0, 1] == 0 and g[0, 2] == -2.0
    assert q[0, 3] == 0 and np.isnan(prod[0, 3])


@pytest.mark.slow
def test_the_rule_is_what_torch_and_tensorflow_autograd_compute() -> None:
    """The derivation against the frameworks themselves (each element: nan where they give nan,
    else equal), so the measurement models what they do and is not read off their runs."""
    p = torch.tensor(P, dtype=torch.float64, requires_grad=True)
    (-torch.sum(torch.tensor(Y) * torch.clamp(torch.log(p), min=-100.0))).backward()
    np.testing.assert_array_equal(p.grad.numpy(), autograd_gradient(Y, P, FORMS[QUOTIENT]) * P.shape[0])
    # TensorFlow as the adapter starts it (its threads are settable only before its first op: a test
    # that ran an op first would leave this process's later in-process Keras runs on other threads)
    tf, _ = import_keras()
    v = tf.Variable(P)
    with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(tf.constant(Y) * tf.maximum(tf.math.log(v), tf.constant(-100.0, tf.float64)))
    np.testing.assert_array_equal(tape.gradient(loss, v).numpy(), autograd_gradient(Y, P, FORMS[PRODUCT]))


@pytest.mark.usefixtures("shared_runs")  # the oracle is served the runs the test made
@pytest.mark.slow
def test_the_finding_s_minimal_file_differs_explained_by_autograd_at_the_clamp() -> None:
    """Both frameworks' nan at step 0 is named, confirmed by the measurement, on each pair with the
    reference; keras and torch agree; the fuzzer counts the file as differ, explained, not a finding."""
    [scenario] = load_scenarios(FILE)
    result = run_scenario(scenario, frameworks=FRAMEWORKS, dtypes=("float64",))
    assert result.ok and result.state == EXPLAINED_STATE  # nn-parity run's verdict: the oracle's judgement
    diagnoses = {(d.comparison.a, d.comparison.b): d for d in diagnose(result)
                 if d.comparison.state == EXPLAINED_STATE}
    assert set(diagnoses) == {("numpy", "keras"), ("numpy", "torch")}, sorted(diagnoses)
    for (_, side), d in diagnoses.items():
        assert d.step == 0 and d.cause_name == NAME, (side, d.cause_name)
        assert isinstance(d.confirmed_by, Finding) and d.confirmed_by.side == side
        assert "exactly 0 at [0, 1]" in d.confirmed_by.description
    [section] = agreement_section(result, [])  # the report's words for each explained pair: what it rests on
    explained = sorted(line for line in section.below if f"{EXPLAINED_STATE}, by" in line)
    assert [line.split(" (float64)")[0] for line in explained] == ["- numpy vs keras", "- numpy vs torch"]
    assert all(f"by {side}: {NAME}" in line and "or differs from it only by a property of its framework, measured "
               "without running the framework's code" in line for side, line in zip(("keras", "torch"), explained))
    outcome = judge_example(Example(read_toml(FILE, what="scenario file"), ()), frameworks=FRAMEWORKS,
                            dtypes=("float64",))
    assert (outcome.kind, outcome.reason) == (EXPLAINED, NAME)


def _nan_loss(original):  # noqa: ANN001, ANN202 - a torch loss builder, planted
    def build(torch_module, loss: str, clip: str):  # noqa: ANN202
        inner = original(torch_module, loss, clip)

        def planted(p, y):  # noqa: ANN001, ANN202
            # 0 x sqrt'(0) = 0 x inf: a nan in the gradient of p[0, 0], the loss unchanged
            return inner(p, y) + 0.0 * torch_module.sqrt(p[0, 0] - p[0, 0].detach())
        return planted
    return build


def _unguarded(original):  # noqa: ANN001, ANN202 - a torch loss builder, planted
    def build(torch_module, loss: str, clip: str):  # noqa: ANN202
        return original(torch_module, loss, "none")  # the declared guard ignored: log(0) = -inf
    return build


PLANTS = {"nan-from-a-sqrt-no-zero-probability": (_nan_loss, 8.0),
          "guard-ignored-at-a-zero-probability": (_unguarded, 800.0)}


@pytest.mark.slow
@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_a_nan_gradient_from_elsewhere_is_not_explained_by_it(plant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's loss planted to put nan in its gradient by another route: a sqrt at 0 times 0 where
    no probability is 0 (logits 8 apart), or the declared guard ignored where one is (an unguarded
    log(0): a nan loss, the same nan gradients as autograd's rule). Neither is named by this cause on
    a pair with torch, and the fuzzer reports a finding on it."""
    wrap, kernel = PLANTS[plant]
    raw = read_toml(FILE, what="scenario file")
    raw["model"]["layers"][0]["kernel"] = [[kernel, 0.0]]
    with inline():
        monkeypatch.setattr(torch_eager, "build_loss", wrap(torch_eager.build_loss))
        result = run_scenario(parse_scenario(raw, path=FILE), frameworks=FRAMEWORKS, dtypes=("float64",))
        diagnoses = [d for d in diagnose(result) if d.comparison.state == DISAGREE]
        outcome = judge_example(Example(raw, ()), frameworks=FRAMEWORKS, dtypes=("float64",))
    with_torch = [d for d in diagnoses if "torch" in (d.comparison.a, d.comparison.b)]
    assert with_torch and all(d.cause_name != NAME for d in with_torch), [d.cause_name for d in diagnoses]
    assert outcome.kind == FINDING, outcome
    if plant.startswith("nan-from"):
        assert {fp.suspect for fp in outcome.fingerprints} == {"torch"}, outcome
        assert all(fp.cause != NAME for fp in outcome.fingerprints), outcome
