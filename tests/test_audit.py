"""Gradient audit: a deliberately wrong backward pass (004's) is caught per parameter and
diagnosed; a correct one passes; broken functions are reported per parameter."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.answers.audit import audit_gradients, load_function
from harness.commands.cli import main
from harness.errors import BadInput
from harness.spec.catalogue import resolve
from harness.testing import assert_gradients_match

pytestmark = pytest.mark.slow  # gradients from the reference, Keras and torch

AUDITS = Path(__file__).resolve().parent.parent / "scenarios" / "keys" / "audits"
SCENARIO = str(AUDITS / "xor-relu-sigmoid.toml")
FILE = AUDITS / "backprop_004.py"


@pytest.fixture(scope="module")
def scenario():
    return resolve(SCENARIO)


@pytest.fixture(scope="module")
def sheet_audit(scenario):
    return audit_gradients(load_function(FILE, "sheet_backward"), scenario, function_name="sheet_backward")


@pytest.mark.parametrize("param", ["layers.0.kernel", "layers.0.bias", "layers.1.kernel", "layers.1.bias"])
def test_the_sheets_backward_pass_is_wrong_for_every_parameter(sheet_audit, param):
    audit = next(p for p in sheet_audit.params if p.name == param)
    assert audit.status == "wrong"
    # wrong against every independent source, not only the reference
    assert min(audit.diffs.values()) > 1e-3


def test_the_wrong_gradient_is_named_as_half_the_mse_gradient(sheet_audit):
    assert "0.5 x the gradient of mse" in sheet_audit.diagnosis
    assert "binary_crossentropy" in sheet_audit.diagnosis


def test_the_independent_gradients_agree(sheet_audit):
    assert sheet_audit.source_spread["torch"] < 1e-14
    assert sheet_audit.source_spread["keras"] < 1e-14
    assert sheet_audit.source_spread["finite differences"] < 1e-8


def test_the_cross_entropy_backward_pass_passes(scenario):
    result = assert_gradients_match(load_function(FILE, "cross_entropy_backward"), scenario)
    assert result.ok and not result.diagnosis


def test_assert_gradients_match_fails_with_the_audit_table():
    with pytest.raises(AssertionError, match="0.5 x the gradient of mse"):
        assert_gradients_match(load_function(FILE, "sheet_backward"), SCENARIO)


def _reference_backward(params, X, y):
    return load_function(FILE, "cross_entropy_backward")(params, X, y)


def _raises(params, X, y):
    raise ValueError("shapes (8,2) and (3,10) not aligned")


def _wrong_shape(params, X, y):
    grads = _reference_backward(params, X, y)
    return grads | {"w1": grads["w1"].T}


def _missing_bias(params, X, y):
    grads = _reference_backward(params, X, y)
    return {k: v for k, v in grads.items() if k != "b2"}


def _scalar_bias(params, X, y):
    grads = _reference_backward(params, X, y)
    return grads | {"b2": float(grads["b2"][0])}  # a (1,) bias returned as a number: same size, accepted


def _doubled(params, X, y):
    return {k: 2 * v for k, v in _reference_backward(params, X, y).items()}


BROKEN = {
    "raises": (_raises, {"layers.0.kernel": "crashed", "layers.1.bias": "crashed"}),
    "transposed-kernel": (_wrong_shape, {"layers.0.kernel": "wrong shape", "layers.0.bias": "ok"}),
    "missing-bias": (_missing_bias, {"layers.1.bias": "missing", "layers.1.kernel": "ok"}),
    "scalar-bias": (_scalar_bias, {"layers.1.bias": "ok"}),
}


@pytest.mark.parametrize("name", list(BROKEN), ids=list(BROKEN))
def test_broken_functions_are_reported_per_parameter(scenario, name):
    fn, statuses = BROKEN[name]
    result = audit_gradients(fn, scenario, function_name=name)
    by_name = {p.name: p for p in result.params}
    for param, status in statuses.items():
        assert by_name[param].status == status, by_name[param].message


def test_a_scale_error_is_named(scenario):
    result = audit_gradients(_doubled, scenario)
    assert "2 x the correct gradient (binary_crossentropy): a scale error" in result.diagnosis


def test_audit_cli_exit_codes_and_json(tmp_path, capsys):
    out = tmp_path / "audit.json"
    assert main(["audit", str(FILE), "--function", "sheet_backward", "--scenario", SCENARIO, "--json", str(out)]) == 1
    data = json.loads(out.read_text())
    assert not data["ok"] and {p["status"] for p in data["parameters"]} == {"wrong"}
    assert main(["audit", str(FILE), "--function", "cross_entropy_backward", "--scenario", SCENARIO]) == 0
    assert main(["audit", str(FILE), "--function", "no_such_function", "--scenario", SCENARIO]) == 2
    assert main(["audit", str(tmp_path / "missing.py"), "--function", "f", "--scenario", SCENARIO]) == 2
    assert "--function" in capsys.readouterr().err


def test_a_file_that_does_not_import_is_bad_input(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def backward(:\n")
    with pytest.raises(BadInput, match="imports cleanly"):
        load_function(bad, "backward")


def test_finite_differences_catch_a_hand_gradient_without_autograd(scenario):
    """The audit's finite differences agree with the correct gradient and not with the sheet's."""
    result = audit_gradients(load_function(FILE, "sheet_backward"), scenario)
    fd = {p.name: p.diffs["finite differences"] for p in result.params}
    assert all(d > 1e-3 for d in fd.values())
    good = audit_gradients(load_function(FILE, "cross_entropy_backward"), scenario)
    assert all(p.diffs["finite differences"] < 1e-8 for p in good.params)
    assert np.isfinite([p.max_rel for p in good.params]).all()
