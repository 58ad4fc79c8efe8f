"""Check a run against the numbers the lab printed (``[[lab_values]]`` of a scenario).

The tolerance is half a unit in the last printed digit (``harness.spec.printed.half_unit``,
the rule answer keys use too) or what the lab value says, and the difference is the
agreement rule's (``harness.spec.tolerance.difference``: a printed nan is matched by nan
only). When the lab's *inputs* were themselves printed rounded (``inputs_rounded_to = d``),
the tolerance widens by the propagated input uncertainty, to first order::

    sum over every element x_j of the rounded data arrays of |d value / d x_j| * 0.5e-d

with each derivative taken by central differences of reference re-runs
(``harness.judge.propagation.propagated``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from harness.judge.propagation import propagated
from harness.run.plan import TrainingPlan, make_plan
from harness.run.quantities import value_at
from harness.run.trajectory import Trajectory
from harness.spec.scenario import LabValue
from harness.spec.tolerance import difference, exceeds


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

    def as_dict(self) -> dict[str, object]:
        return {"what": self.lab.what, "param": self.lab.param, "step": self.lab.step,
                "expected": self.lab.value.tolist(),
                "computed": None if self.computed is None else np.asarray(self.computed).tolist(),
                "max_abs_diff": self.max_abs_diff, "tolerance": self.tolerance_text, "ok": self.ok,
                "dtype": self.lab.dtype, "convention": self.lab.convention, "layer": self.lab.layer,
                "source": self.lab.source}


def computed_value(lab: LabValue, trajectory: Trajectory, plan: TrainingPlan) -> tuple[int | None, np.ndarray | None]:
    """The run's value of the quantity the lab printed."""
    return value_at(trajectory, plan, what=lab.what, step=lab.step, param=lab.param, layer=lab.layer)


Rerun = Callable[[TrainingPlan], Trajectory]  # the reference run on another plan (``harness.judge.runs``)


def check_lab_value(lab: LabValue, trajectory: Trajectory, plan: TrainingPlan, *, rerun: Rerun) -> LabCheck:
    """``trajectory``: the reference run in the lab value's dtype (and convention) on ``plan``;
    ``rerun`` makes the reference's runs on the data rounded as printed (``propagated_uncertainty``)."""
    step, value = computed_value(lab, trajectory, plan)
    if value is None:
        return LabCheck(lab, None, None, float("inf"), False)
    value = np.asarray(value, dtype=np.float64).reshape(lab.value.shape)
    diff = difference(value, lab.value)  # a printed nan (a diverged run) is matched by nan only
    widening = None if lab.inputs_rounded_to is None else propagated_uncertainty(lab, plan, rerun=rerun)
    allowed = lab.tolerance if widening is None else lab.tolerance + widening
    return LabCheck(lab, step, value, float(np.max(diff)), not bool(np.any(exceeds(value, lab.value, allowed))),
                    widening)


def check_lab_values(trajectory: Trajectory, plan: TrainingPlan, *, rerun: Rerun) -> list[LabCheck]:
    """Every lab value of the plan's dtype against one reference run (no convention selection)."""
    return [check_lab_value(lab, trajectory, plan, rerun=rerun) for lab in plan.scenario.lab_values
            if lab.dtype == plan.dtype]


def propagated_uncertainty(lab: LabValue, plan: TrainingPlan, *, rerun: Rerun) -> np.ndarray:
    """First-order uncertainty of the quantity from the data arrays ``lab.rounded_inputs`` printed at
    ``inputs_rounded_to`` decimals: ``propagated`` with the reference re-run on the data replaced."""
    scenario, decimals = plan.scenario, lab.inputs_rounded_to
    if decimals is None:
        raise ValueError("the lab value declares no inputs_rounded_to")

    def value_from(data: dict[str, np.ndarray]) -> np.ndarray:
        variant = replace(scenario, data=replace(scenario.data, X=data.get("X", scenario.data.X),
                                                 y=data.get("y", scenario.data.y)))
        side_plan = make_plan(variant, plan.dtype)
        _, value = computed_value(lab, rerun(side_plan), side_plan)
        return np.asarray(value, dtype=np.float64).reshape(lab.value.shape)

    inputs = {name: getattr(scenario.data, name) for name in lab.rounded_inputs}
    return propagated(value_from, inputs, {name: decimals for name in lab.rounded_inputs})
