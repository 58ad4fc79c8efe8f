"""Check a run against the numbers the lab printed (``[[lab_values]]`` of a scenario).

The tolerance is half a unit in the last printed digit (or what the lab value says).
When the lab's *inputs* were themselves printed rounded (``inputs_rounded_to = d``),
the tolerance widens by the propagated input uncertainty, to first order::

    sum over every element x_j of the rounded data arrays of |d value / d x_j| * 0.5e-d

with each derivative taken by central differences of reference re-runs.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from harness.run.adapters import REFERENCE, adapter, run_framework
from harness.run.plan import TrainingPlan, make_plan
from harness.spec.scenario import LabValue
from harness.run.trajectory import Trajectory


@dataclass
class LabCheck:
    lab: LabValue
    step: int | None  # the resolved step (None: the run never reached it)
    computed: np.ndarray | None
    max_abs_diff: float
    ok: bool
    propagated: np.ndarray | None = None  # the widening from rounded inputs, per element

    @property
    def label(self) -> str:
        if self.lab.what == "output":
            what = f"output layers.{self.lab.layer}" if self.lab.layer is not None else "output"
        else:
            what = self.lab.what if self.lab.param is None else f"{self.lab.what} {self.lab.param}"
        where = f" ({self.lab.dtype}{', ' + self.lab.convention + ' convention' if self.lab.convention else ''})"
        return f"{what} @ step {self.lab.step}" + (where if where != " (float64)" else "")

    @property
    def tolerance_text(self) -> str:
        if self.propagated is None:
            return self.lab.tolerance_rule
        return (f"{self.lab.tolerance_rule} + {' and '.join(self.lab.rounded_inputs)} printed at "
                f"{self.lab.inputs_rounded_to} decimals: "
                f"±{float(np.max(self.propagated)):.1e} (propagated)")

    def as_dict(self) -> dict:
        return {"what": self.lab.what, "param": self.lab.param, "step": self.lab.step,
                "expected": self.lab.value.tolist(),
                "computed": None if self.computed is None else np.asarray(self.computed).tolist(),
                "max_abs_diff": self.max_abs_diff, "tolerance": self.tolerance_text, "ok": self.ok,
                "dtype": self.lab.dtype, "convention": self.lab.convention, "layer": self.lab.layer,
                "source": self.lab.source}


def computed_value(lab: LabValue, trajectory: Trajectory, plan: TrainingPlan) -> tuple[int | None, np.ndarray | None]:
    """The run's value of the quantity the lab printed."""
    final = trajectory.steps - 1
    step = final if lab.step == "final" else int(lab.step)
    if lab.what == "output":
        layer = len(plan.scenario.layers) - 1 if lab.layer is None else lab.layer
        if lab.step == "final" or step == trajectory.steps:
            return max(step, 0), trajectory.outputs_final[layer]
        if step == 0:
            return 0, trajectory.outputs_initial[layer]
        if step > trajectory.steps:
            return None, None
        return step, adapter(REFERENCE).forward(plan.scenario, trajectory.params_before(step), plan.X)[layer]
    if step < 0 or step > final:
        return None, None
    if lab.what == "params":
        return step, trajectory.params[lab.param][step]
    if lab.what == "gradient":
        return step, trajectory.grads[lab.param][step]
    if lab.what == "loss":
        return step, np.atleast_1d(trajectory.losses[step])
    raise ValueError(lab.what)


def check_lab_value(lab: LabValue, trajectory: Trajectory, plan: TrainingPlan) -> LabCheck:
    """``trajectory``: the reference run in the lab value's dtype (and convention) on ``plan``."""
    step, value = computed_value(lab, trajectory, plan)
    if value is None:
        return LabCheck(lab, None, None, float("inf"), False)
    value = np.asarray(value, dtype=np.float64).reshape(lab.value.shape)
    with np.errstate(invalid="ignore"):  # a printed nan (a diverged run) is matched by nan only
        same = (value == lab.value) | (np.isnan(value) & np.isnan(lab.value))
        diff = np.where(same, 0.0, np.abs(value - lab.value))
    diff = np.where(np.isnan(diff), np.inf, diff)
    propagated = None if lab.inputs_rounded_to is None else propagated_uncertainty(lab, plan)
    allowed = lab.tolerance if propagated is None else lab.tolerance + propagated
    return LabCheck(lab, step, value, float(np.max(diff)), bool(np.all(diff <= allowed)), propagated)


def check_lab_values(trajectory: Trajectory, plan: TrainingPlan) -> list[LabCheck]:
    """Every lab value of the plan's dtype against one reference run (no convention selection)."""
    return [check_lab_value(lab, trajectory, plan) for lab in plan.scenario.lab_values if lab.dtype == plan.dtype]


def propagated_uncertainty(lab: LabValue, plan: TrainingPlan) -> np.ndarray:
    """First-order uncertainty of the quantity from data inputs printed at ``inputs_rounded_to``
    decimals: sum_j |dq/dx_j| * 0.5e-d over every element of X and y, by central differences."""
    half_unit = 0.5 * 10.0 ** -lab.inputs_rounded_to
    scenario = plan.scenario
    total = np.zeros(lab.value.shape)
    for field_name in lab.rounded_inputs:
        base = getattr(scenario.data, field_name)
        for index in np.ndindex(base.shape):
            h = 1e-6 * max(1.0, abs(float(base[index])))
            sides = []
            for sign in (1.0, -1.0):
                moved = base.copy()
                moved[index] += sign * h
                variant = replace(scenario, data=replace(scenario.data, **{field_name: moved}))
                side_plan = make_plan(variant, plan.dtype)
                _, value = computed_value(lab, run_framework(REFERENCE, side_plan), side_plan)
                sides.append(np.asarray(value, dtype=np.float64).reshape(lab.value.shape))
            total += np.abs((sides[0] - sides[1]) / (2 * h)) * half_unit
    return total
