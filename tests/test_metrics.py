"""Accuracy (binary threshold, categorical argmax), evaluation on held-out splits, and
the XOR scenario's trained accuracy."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness.judge.metrics import accuracy, evaluate
from harness.run.adapters import adapter
from harness.spec.catalogue import resolve


def test_binary_accuracy_thresholds_at_one_half():
    y = np.array([[1], [0], [1], [0]], dtype=float)
    p = np.array([[0.9], [0.2], [0.5], [0.51]])  # 0.5 is class 0: the homework's output > 0.5
    assert accuracy(y, p, loss="binary_crossentropy") == 0.5
    assert accuracy(y, y, loss="binary_crossentropy") == 1.0
    assert accuracy(y, 1 - y, loss="binary_crossentropy") == 0.0


def test_categorical_accuracy_is_argmax():
    y = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    p = np.array([[0.5, 0.3, 0.2], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    assert accuracy(y, p, loss="categorical_crossentropy") == pytest.approx(2 / 3)


@pytest.mark.parametrize("y, p, loss", [
    (np.zeros((3, 1)), np.zeros((2, 1)), "binary_crossentropy"),       # row counts differ
    (np.zeros((3, 2)), np.zeros((3, 2)), "binary_crossentropy"),       # two columns for a binary label
    (np.zeros(3), np.zeros(3), "binary_crossentropy"),                 # not a column
    (np.zeros((3, 1)), np.zeros((3, 1)), "mse"),                       # regression has no accuracy
])
def test_accuracy_rejects_what_it_cannot_score(y, p, loss):
    with pytest.raises(ValueError, match="accuracy: expected|accuracy: binary"):
        accuracy(y, p, loss=loss)


def test_evaluate_uses_the_reference_forward_pass():
    s = resolve("softmax-classifier")
    X = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    params = {"layers.0.kernel": np.array([[1.0, 3.0], [2.0, 4.0]]), "layers.0.bias": np.array([-10.0, -20.0])}
    # the notes' probabilities: row 0 class 0, rows 1 and 2 class 1
    right = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    got = evaluate(s, params, {"all": (X, right), "flipped": (X, right[:, ::-1])})
    assert got == {"all": 1.0, "flipped": 0.0}


# --- the XOR scenario ---------------------------------------------------------------

XOR = "xor-perceptron"


@pytest.mark.parametrize("catalogue_result", [XOR], indirect=True, scope="session")
def test_xor_reference_learns_xor(catalogue_result):
    """Stated in scenarios/xor-perceptron.toml: train 799/800, validation and test 100/100."""
    result = catalogue_result
    plan, run = result.plans["float64"], result.runs[("numpy", "float64")]
    scores = evaluate(result.scenario, run.final_params, {"train": (plan.X, plan.y), **plan.splits})
    assert scores["train"] >= 799 / 800 and scores["validation"] == 1.0 and scores["test"] == 1.0, scores


@pytest.mark.parametrize("framework", ["numpy", "keras", "torch"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("catalogue_result", [XOR], indirect=True, scope="session")
def test_xor_every_run_learns_and_the_clip_never_binds(catalogue_result, framework, dtype):
    """Every implementation reaches >= 99% on each split, and no batch output ever leaves
    [1e-7, 1 - 1e-7], so the choice of cross-entropy clip does not change the run."""
    result = catalogue_result
    plan, run = result.plans[dtype], result.runs[(framework, dtype)]
    assert run.status == "ok", run.message
    scores = evaluate(result.scenario, run.final_params, {"train": (plan.X, plan.y), **plan.splits})
    assert min(scores.values()) >= 0.99, scores
    reference = adapter("numpy")
    outputs = np.concatenate([
        reference.forward(result.scenario, run.params_before(t), plan.X[plan.batch_indices(t)])[-1]
        for t in range(run.steps)])
    assert outputs.min() > 1e-7 and outputs.max() < 1 - 1e-7, (outputs.min(), 1 - outputs.max())


def test_evaluate_needs_a_training_loss():
    forward_only = dataclasses.replace(resolve("softmax-classifier"), training=None)
    with pytest.raises(ValueError, match="forward-only"):
        evaluate(forward_only, {}, {})
