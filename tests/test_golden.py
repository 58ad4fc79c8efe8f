"""Golden tests: the float64 reference reproduces the numbers the labs print
(each scenario's [[lab_values]], with the tolerance its printed digits imply)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness.judge.lab_values import check_lab_value, check_lab_values
from harness.run.adapters import run_framework
from harness.run.labels import with_convention
from harness.run.plan import make_plan
from harness.spec.catalogue import catalogue_scenarios
from harness.spec.scenario import LabValue, Scenario

pytestmark = pytest.mark.slow  # every lab value reruns the reference on its catalogue scenario

CATALOGUE_BY_NAME = {s.name: s for s in catalogue_scenarios()}



def _case_id(scenario: Scenario, index: int, lab: LabValue) -> str:
    where = lab.param or (f"layer{lab.layer}" if lab.layer is not None else "output")
    return f"{scenario.name}[{lab.what}-{where}-step{lab.step}-{lab.dtype}-{index}]"


CASES = [pytest.param(s.name, i, id=_case_id(s, i, lab))
         for s in CATALOGUE_BY_NAME.values() for i, lab in enumerate(s.lab_values)]


@pytest.mark.parametrize("name, index", CASES)
def test_reference_reproduces_printed_value(name, index):
    """The reference runs in the lab value's dtype (float64 unless it says) and optimizer convention."""
    scenario = CATALOGUE_BY_NAME[name]
    lab = scenario.lab_values[index]
    plan = make_plan(with_convention(scenario, lab.convention) if lab.convention else scenario, lab.dtype)
    check = check_lab_value(lab, run_framework("numpy", plan), plan, rerun=lambda p: run_framework("numpy", p))
    assert check.ok, (f"{name}: {check.label}: the lab printed {check.lab.value.ravel().tolist()}, the reference "
                      f"computed {None if check.computed is None else check.computed.ravel().tolist()} "
                      f"(max |diff| {check.max_abs_diff:.3e}; tolerance {check.lab.tolerance_rule})")


def test_the_three_design_scenarios_have_lab_values():
    for name in ("sigmoid-exponential", "softmax-classifier", "minibatch-regression"):
        assert CATALOGUE_BY_NAME[name].lab_values, name


def test_minibatch_regression_first_step_exactly_as_printed():
    """The lab's first mini-batch: dw = (-6, -4.26666667), db = -3.2, then w = (1.6, 1.42666667), b = 0.32."""
    plan = make_plan(CATALOGUE_BY_NAME["minibatch-regression"], "float64")
    run = run_framework("numpy", plan)
    np.testing.assert_allclose(run.grads["layers.0.kernel"][0].ravel(), [-6.0, -64 / 15], rtol=0, atol=1e-14)
    np.testing.assert_allclose(run.grads["layers.0.bias"][0], [-3.2], rtol=0, atol=1e-14)
    np.testing.assert_allclose(run.params["layers.0.kernel"][0].ravel(), [1.6, 1 + 0.1 * 64 / 15],
                               rtol=0, atol=1e-14)
    np.testing.assert_allclose(run.params["layers.0.bias"][0], [0.32], rtol=0, atol=1e-14)


def test_minibatch_regression_converges_and_stops_early():
    run = run_framework("numpy", make_plan(CATALOGUE_BY_NAME["minibatch-regression"], "float64"))
    assert run.stopped_early_at is not None and run.stopped_early_at < 12 * 1000 // 3
    final = run.final_params
    np.testing.assert_allclose(final["layers.0.kernel"].ravel(), [1.5, 1.5], atol=1e-3)
    np.testing.assert_allclose(final["layers.0.bias"], [0.1], atol=1e-3)


def test_golden_check_catches_a_wrong_printed_value():
    """A lab value one unit off in the last printed decimal is reported as a mismatch."""
    scenario = CATALOGUE_BY_NAME["sigmoid-exponential"]
    lab = scenario.lab_values[0]
    wrong = dataclasses.replace(lab, value=lab.value + np.eye(*lab.value.shape) * 1e-8)
    broken = dataclasses.replace(scenario, lab_values=(wrong,))
    plan = make_plan(broken, "float64")
    checks = check_lab_values(run_framework("numpy", plan), plan, rerun=lambda p: run_framework("numpy", p))
    assert not checks[0].ok
    assert checks[0].max_abs_diff > 5e-9
