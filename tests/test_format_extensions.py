"""Scenario format extensions: forward-only scenarios, per-layer outputs compared in every
implementation, [[variants]], and lab values with layer / dtype / inputs_rounded_to."""
from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.errors import BadInput
from harness.pipeline import diagnose, run_scenario
from harness.render.file_set import scenario_files
from harness.spec.printed import parse_printed
from harness.spec.scenario import load_scenarios, parse_scenario

pytestmark = pytest.mark.slow  # real runs in the reference, Keras and torch

FORWARD = """
name = "forward"
[data]
X = [[1, 2], [3, -1]]
[model]
input_dim = 2
[[model.layers]]
units = 2
activation = "sigmoid"
kernel = [[2, 0.5], [-1, 1]]
bias = [1, 0]
[[model.layers]]
units = 2
activation = "softmax"
kernel = [[1, -1], [0.5, 2]]
[[lab_values]]
what = "output"
layer = 0
value = [[0.7310585786, 0.9241418200], [0.9996646499, 0.6224593312]]
decimals = 9
"""

ROUNDED = """
name = "rounded"
[data]
X = [[1], [2], [3]]
y = [[0.99], [3.00], [5.01]]
[model]
input_dim = 1
[[model.layers]]
units = 1
kernel = [[0.0]]
bias = [0.0]
[training]
loss = "mse"
optimizer = { name = "sgd", learning_rate = 0.1 }
epochs = 1
[[lab_values]]
what = "gradient"
step = 0
param = "layers.0.kernel"
value = [[-14.69]]
decimals = 2
inputs_rounded_to = 2
rounded_inputs = ["y"]
"""


def parse(text: str, name: str = "x.toml"):
    return parse_scenario(tomllib.loads(text), path=Path(name))


def test_forward_only_scenario_compares_every_layer_output_in_every_implementation():
    result = run_scenario(parse(FORWARD))
    assert result.agree and result.lab_ok
    assert {r.steps for r in result.runs.values()} == {0}
    for c in result.comparisons:
        assert set(c.quantities) == {"output layers.0 (start)", "output layers.1 (start)"}
    [check] = result.lab_checks
    assert check.ok and check.max_abs_diff < 5e-10


def test_a_wrong_forward_pass_in_one_implementation_is_caught_at_its_layer():
    """torch runs a tanh where the others run a sigmoid: the layer-0 outputs disagree at step 0."""
    scenario = parse(FORWARD)
    wrong = replace(scenario, layers=(replace(scenario.layers[0], activation="tanh"), scenario.layers[1]))
    result = run_scenario(scenario, frameworks=("numpy", "torch"), dtypes=("float64",), sides={"torch": wrong})
    [c] = result.comparisons
    assert not c.agree and c.first_divergent_step == 0
    assert c.mismatch.quantity == "output layers.0 (start)"


@pytest.mark.parametrize("catalogue_result", ["minibatch-regression"], indirect=True, scope="session")
def test_trained_runs_record_outputs_before_and_after_training(catalogue_result):
    result = catalogue_result
    c = result.comparison("numpy", "torch", "float64")
    assert {"output layers.0 (start)", "output layers.0 (end)"} <= set(c.quantities)
    run = result.runs[("numpy", "float64")]
    X = result.plans["float64"].X
    final = run.final_params
    np.testing.assert_allclose(run.outputs_final[0], X @ final["layers.0.kernel"] + final["layers.0.bias"],
                               rtol=1e-15)


def test_forward_only_scenarios_reject_training_lab_values():
    text = FORWARD.replace('what = "output"\nlayer = 0', 'what = "loss"')
    with pytest.raises(BadInput, match=r"x.toml: lab_values\[0\].what: expected \"output\""):
        parse(text)


def test_a_training_scenario_still_needs_targets():
    text = ROUNDED.replace("y = [[0.99], [3.00], [5.01]]\n", "")
    with pytest.raises(BadInput, match=r"data.y: expected a numeric array"):
        parse(text)


def test_variants_make_one_scenario_each_with_their_own_lab_values(tmp_path):
    path = tmp_path / "v.toml"
    path.write_text(FORWARD + """
[[variants]]
name = "as-written"
[[variants]]
name = "bias-2"
set = { "model.layers.0.bias" = [2, 0], "model.layers.1.units" = 2 }
[[variants.lab_values]]
what = "output"
layer = 0
step = 0
value = [[0.88079708, 0.92414182], [0.99987661, 0.62245933]]
decimals = 8
""")
    a, b = load_scenarios(path)
    assert (a.name, b.name) == ("forward-as-written", "forward-bias-2")
    assert a.layers[0].bias.tolist() == [1, 0] and b.layers[0].bias.tolist() == [2, 0]
    assert len(a.lab_values) == 1 and len(b.lab_values) == 2
    result = run_scenario(b, frameworks=("numpy",), dtypes=("float64",))
    assert [c.ok for c in result.lab_checks] == [False, True]  # the file-wide value is the unvaried one


@pytest.mark.parametrize("variant, message", [
    ('name = "x"\nset = { "model.layers.5.units" = 2 }',
     r"variants\[0\].set.\"model.layers.5.units\": expected an index below 2"),
    ('name = "x"\nset = { "model.nothing.units" = 2 }', r"expected an existing field at 'nothing'"),
    ('name = "x"\nset = { "model.layers.0.units" = 3 }',
     r"variants\[0\] \(forward-x\): model.layers\[0\].kernel: expected shape \(2, 3\)"),
    ('set = {}', r"variants\[0\].name: expected a string"),
    ('name = "../x"', r"variants\[0\].name: expected lowercase letters, digits and dashes"),
    ('name = "Wide"', r"variants\[0\].name: expected lowercase letters, digits and dashes"),
    (f'name = "{"x" * 80}"', r"variants\[0\].name: expected a suffix short enough"),
])
def test_bad_variants_name_the_variant_and_field(tmp_path, variant, message):
    path = tmp_path / "v.toml"
    path.write_text(FORWARD + "\n[[variants]]\n" + variant + "\n")
    with pytest.raises(BadInput, match=message):
        load_scenarios(path)


def test_float32_lab_values_are_checked_against_the_float32_reference():
    """Single-precision outputs match the values to 6 decimals but not to 9: the float32 run is used."""
    for decimals, ok in ((6, True), (9, False)):
        text = FORWARD.replace('decimals = 9', f'decimals = {decimals}\ndtype = "float32"')
        [check] = run_scenario(parse(text), frameworks=("numpy",)).lab_checks
        assert check.lab.dtype == "float32" and "float32" in check.label
        assert check.ok is ok and 1e-9 < check.max_abs_diff < 1e-7


def test_rounded_inputs_widen_the_tolerance_by_the_propagated_uncertainty():
    """dL/dw = -2/3 * sum(x_i y_i) at w = b = 0: from the printed y it is -14.68, the notes print
    -14.69 (their y were rounded to 2 decimals). The propagated part is sum |2/3 x_i| * 0.005 = 0.02."""
    result = run_scenario(parse(ROUNDED), frameworks=("numpy",), dtypes=("float64",))
    [check] = result.lab_checks
    assert check.computed.ravel()[0] == pytest.approx(-14.68, abs=1e-12)
    assert check.max_abs_diff == pytest.approx(0.01, abs=1e-9)  # beyond the printed ±0.005 alone
    assert check.propagated.ravel()[0] == pytest.approx(0.02, rel=1e-6)
    assert check.ok and "propagated" in check.tolerance_text
    strict = run_scenario(parse(ROUNDED.replace("inputs_rounded_to = 2\nrounded_inputs = [\"y\"]\n", "")),
                          frameworks=("numpy",),
                          dtypes=("float64",))
    assert not strict.lab_checks[0].ok


def test_lab_value_digits_give_the_tolerance_a_printed_key_answer_gets():
    """One digits-to-tolerance rule: ``significant = 3`` on a lab value and numpy's ``9.82e-01``
    (3 significant digits) in a key, ``decimals = 2`` and ``0.99``, give the same half units."""
    printed = "array([[9.82e-01, 1.80e-02],\n[6.14e-06, 1.00e+00]])"
    lab = FORWARD.replace("value = [[0.7310585786, 0.9241418200], [0.9996646499, 0.6224593312]]\ndecimals = 9",
                          "value = [[9.82e-01, 1.80e-02], [6.14e-06, 1.00e+00]]\nsignificant = 3")
    [lab_value] = parse(lab).lab_values
    np.testing.assert_array_equal(lab_value.tolerance, parse_printed(printed).half_unit)
    np.testing.assert_array_equal(lab_value.tolerance, [[5e-4, 5e-5], [5e-9, 5e-3]])
    [fixed] = parse(ROUNDED).lab_values
    np.testing.assert_array_equal(fixed.tolerance, parse_printed("[[-14.69]]").half_unit)


def test_a_forward_only_report_shows_the_outputs_and_draws_no_step_plots():
    result = run_scenario(parse(FORWARD))
    files = scenario_files(result, diagnose(result))
    assert set(files) == {"forward.md"}  # no steps: no loss curves, no per-step differences
    text = files["forward.md"].decode()
    assert "## Outputs of the last layer (float64)" in text and "forward-only scenario" in text
    [row] = [line for line in text.splitlines() if line.startswith("| output layers.0 @ step final")]
    assert "0.7310585786, 0.92414182" in row and row.rstrip(" |").endswith("matches")
