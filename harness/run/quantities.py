"""The value a run computed of one quantity at one step: its parameters after the step, its gradient
or loss at the step, or the network's outputs on the whole data set before it.

One reading for everything that asks a run for a printed quantity: a scenario's lab values
(``harness.judge.lab_values``) and an answer key's scenario answers (``harness.answers.compute``).
"""
from __future__ import annotations

import numpy as np

from harness.run.adapters.numpy_reference import ADAPTER as REFERENCE_ADAPTER
from harness.run.plan import TrainingPlan
from harness.run.trajectory import Trajectory


def value_at(trajectory: Trajectory, plan: TrainingPlan, *, what: str, step: int | str, param: str | None = None,
             layer: int | None = None) -> tuple[int | None, np.ndarray | None]:
    """(the step, the value) of ``what`` in the run: ``params`` (after ``step``), ``gradient`` (at
    ``step``) of ``param``, ``loss`` (at ``step``, before its update) or ``output`` (of ``layer``, None:
    the last, on the whole data set with the parameters before ``step``; step = the number of steps:
    the final output); ``step`` an index or ``"final"``. (None, None) for a step the run did not reach."""
    final = trajectory.steps - 1
    index = final if step == "final" else int(step)
    if what == "output":
        layer = len(plan.scenario.layers) - 1 if layer is None else layer
        if step == "final" or index == trajectory.steps:
            return max(index, 0), trajectory.outputs_final[layer]
        if index == 0:
            return 0, trajectory.outputs_initial[layer]
        if index > trajectory.steps:
            return None, None
        return index, REFERENCE_ADAPTER.forward(plan.scenario, trajectory.params_before(index), plan.X)[layer]
    if index < 0 or index > final:
        return None, None
    if what == "params" and param is not None:
        return index, trajectory.params[param][index]
    if what == "gradient" and param is not None:
        return index, trajectory.grads[param][index]
    if what == "loss":
        return index, np.atleast_1d(trajectory.losses[index])
    raise ValueError(f"{what} (param {param})")
