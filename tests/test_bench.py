"""The hand-written NumPy loop ``nn-parity bench`` times the reference against: it computes what the
reference computes (so the ratio compares the same maths), and the bench reports it. Correctness
only: the bench measures the speed, no test times anything."""
from __future__ import annotations

import json

import numpy as np
import pytest

from harness.commands.cli import main
from harness.run.adapters.numpy_reference import NumpyReference
from harness.run.hand_loop import hand_loop, not_defined
from harness.run.plan import make_plan
from harness.spec.catalogue import resolve


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sigmoid-exponential", "softmax-classifier", "minibatch-regression"])
def test_hand_loop_ends_where_the_reference_ends(name):
    """The Week 4 network (full batch, mse), a softmax classifier (biases, categorical cross-entropy)
    and mini-batches with an early stop: the same losses and final parameters within 1e-12."""
    plan = make_plan(resolve(name), "float64")
    losses, params = hand_loop(plan)
    run = NumpyReference().run(plan)
    assert losses.shape == run.losses.shape
    np.testing.assert_allclose(losses, run.losses, rtol=1e-12, atol=0, err_msg=f"{name}: losses")
    assert params.keys() == run.final_params.keys()
    for key, value in params.items():
        np.testing.assert_allclose(value, run.final_params[key], rtol=1e-12, atol=1e-12, err_msg=f"{name}: {key}")


@pytest.mark.parametrize("name, because", [
    ("sigmoid-exponential-adam", "plain SGD"),
    ("minibatch-momentum", "plain SGD"),
    ("xor-perceptron", "clips as keras"),
    ("calculate-z-example", "forward-only"),
])
def test_hand_loop_says_why_it_is_not_defined(name, because):
    reason = not_defined(resolve(name))
    assert reason is not None and because in reason


@pytest.mark.parametrize("name", ["sigmoid-exponential", "softmax-classifier", "relu-exact-zeros"])
def test_hand_loop_is_defined_for_dense_sgd_scenarios(name):
    assert not_defined(resolve(name)) is None


@pytest.mark.parametrize("name, defined", [("backprop-exercise", True), ("tanh-adam", False)])
def test_bench_json_has_hand_loop_seconds_beside_results(name, defined, tmp_path, capsys):
    out = tmp_path / "bench.json"  # the reference alone: no worker
    assert main(["bench", name, "--frameworks", "numpy", "--repeat", "1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r["framework"] for r in data["results"]] == ["numpy"]
    assert len(data["load_average"]["before"]) == len(data["load_average"]["after"]) == 3
    printed = capsys.readouterr().out
    if defined:
        assert data["hand_loop_seconds"] > 0 and data["reference_to_hand_loop"] > 0
        assert "hand-written NumPy loop: " in printed and "x its time" in printed
    else:
        assert data["hand_loop_seconds"] is None and data["reference_to_hand_loop"] is None
        assert "hand-written NumPy loop: not defined (the hand loop is plain SGD" in printed
