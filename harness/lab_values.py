"""Check a run against the numbers the lab printed (``[[lab_values]]`` of a scenario)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.plan import TrainingPlan
from harness.scenario import LabValue
from harness.trajectory import Trajectory


@dataclass
class LabCheck:
    lab: LabValue
    step: int | None  # the resolved step (None: the run never reached it)
    computed: np.ndarray | None
    max_abs_diff: float
    ok: bool

    @property
    def label(self) -> str:
        what = self.lab.what if self.lab.param is None else f"{self.lab.what} {self.lab.param}"
        return f"{what} @ step {self.lab.step}"

    def as_dict(self) -> dict:
        return {"what": self.lab.what, "param": self.lab.param, "step": self.lab.step,
                "expected": self.lab.value.tolist(),
                "computed": None if self.computed is None else np.asarray(self.computed).tolist(),
                "max_abs_diff": self.max_abs_diff, "tolerance": self.lab.tolerance_rule, "ok": self.ok,
                "source": self.lab.source}


def computed_value(lab: LabValue, trajectory: Trajectory, plan: TrainingPlan) -> tuple[int | None, np.ndarray | None]:
    """The run's value of the quantity the lab printed."""
    final = trajectory.steps - 1
    step = final if lab.step == "final" else int(lab.step)
    if lab.what == "output":
        from harness.adapters.numpy_reference import build_network

        if step > trajectory.steps:
            return None, None
        params = trajectory.params_before(step) if lab.step != "final" else trajectory.final_params
        return step, build_network(plan.scenario).predict(plan.X, params)
    if step < 0 or step > final:
        return None, None
    if lab.what == "params":
        return step, trajectory.params[lab.param][step]
    if lab.what == "gradient":
        return step, trajectory.grads[lab.param][step]
    if lab.what == "loss":
        return step, np.atleast_1d(trajectory.losses[step])
    raise ValueError(lab.what)


def check_lab_values(trajectory: Trajectory, plan: TrainingPlan) -> list[LabCheck]:
    checks = []
    for lab in plan.scenario.lab_values:
        step, value = computed_value(lab, trajectory, plan)
        if value is None:
            checks.append(LabCheck(lab, None, None, float("inf"), False))
            continue
        value = np.asarray(value, dtype=np.float64).reshape(lab.value.shape)
        with np.errstate(invalid="ignore"):  # a printed nan (a diverged run) is matched by nan only
            same = (value == lab.value) | (np.isnan(value) & np.isnan(lab.value))
            diff = np.where(same, 0.0, np.abs(value - lab.value))
        diff = np.where(np.isnan(diff), np.inf, diff)
        checks.append(LabCheck(lab, step, value, float(np.max(diff)), bool(np.all(diff <= lab.tolerance))))
    return checks
