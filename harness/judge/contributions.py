"""A convention difference separated into its parts, each measured alone on the reference: the whole
convention, the Keras formula unrounded (float64), the torch formula, and each bundled default
option (``contributions``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.judge.causes.conventions import reference_scenario_in
from harness.judge.causes.settings import with_optimizer
from harness.judge.controls import run_side
from harness.judge.result import ScenarioResult
from harness.judge.runs import Runs
from harness.run.labels import reference_in
from harness.run.plan import make_plan
from harness.run.progress import Progress
from harness.run.trajectory import Trajectory
from harness.spec.conventions import convention_difference, number
from harness.spec.scenario import Scenario
from harness.spec.tolerance import difference
from reference.optimizers import DEFAULTS


@dataclass(frozen=True)
class Contribution:
    """One part of a convention difference, measured alone: a reference run against the reference
    changed in only that part."""

    part: str  # e.g. "the torch formula with Keras' default epsilon 1e-7"
    dtype: str
    loss_gap: float  # max |a - b| of the loss over the steps
    params_gap: float  # max |a - b| of the final parameters
    against: str = "the Keras convention's"  # the reference run it is measured against

    def describe(self) -> str:
        return (f"{self.part} ({self.dtype}): the loss differs from {self.against} by up to "
                f"{self.loss_gap:.2g}, the final parameters by {self.params_gap:.2g}")


def bundled_defaults(scenario: Scenario) -> dict[str, tuple[float, float]]:
    """The optimizer options the scenario leaves at defaults that differ between the Keras and
    torch conventions (option -> (keras default, torch default))."""
    if scenario.training is None:
        return {}
    spec = scenario.training.optimizer
    keras, torch = DEFAULTS[spec.name]["keras"], DEFAULTS[spec.name]["torch"]
    return {k: (keras[k], torch[k]) for k in keras if k not in spec.options and keras[k] != torch[k]}


def contributions(result: ScenarioResult, dtype: str, *, runs: Runs,
                  progress: Progress | None = None) -> list[Contribution]:
    """Separate a convention difference into its parts, each changed alone:

    * the whole: the reference in the torch convention against the Keras convention's;
    * in float64, where Keras on TensorFlow rounds a hyper-parameter to float32 (SGD's momentum,
      Adam's betas): the Keras formula unrounded (``keras-unrounded``) against the Keras
      convention's, what that rounding alone costs; the parts below are then measured against the
      unrounded Keras formula, so that none of them carries the rounding;
    * the torch formula (with Keras' defaults, when the convention bundles other defaults), the
      formula alone;
    * the Keras formula with torch's default of each bundled option, that default alone.

    Empty when there is nothing to separate (the formula is the whole difference)."""
    bundled = bundled_defaults(result.scenario)
    rounding = None if dtype != "float64" else convention_difference(result.scenario.training_spec.optimizer, "keras",
                                                          "keras-unrounded")
    if not bundled and rounding is None:
        return []
    plan = result.plans.get(dtype) or make_plan(result.scenario, dtype)

    def run(convention: str, scenario: Scenario | None = None) -> Trajectory:
        """The reference run in ``convention`` (reused when it ran), or ``scenario`` labelled so."""
        return run_side(result, reference_in(convention), scenario or reference_scenario_in(result, convention), dtype,
                        plan, runs=runs, progress=progress)

    def changed(convention: str, options: dict[str, float]) -> Trajectory:
        """The reference run in ``convention`` with some options changed (the run itself: none)."""
        if not options:
            return run(convention)
        side = reference_scenario_in(result, convention)
        return run(convention, with_optimizer(side, options={**side.training_spec.optimizer.options, **options}))

    keras_run = run("keras")
    parts = [("the torch convention (its formula and its defaults)", run("torch"), keras_run,
              "the Keras convention's")]
    base_convention, against = ("keras", "the Keras convention's") if rounding is None else \
        ("keras-unrounded", "the Keras formula unrounded")
    base = run(base_convention)
    if rounding is not None:
        parts.append((f"the Keras formula unrounded (keras-unrounded: {rounding})", base, keras_run,
                      "the Keras convention's"))
    keras_defaults = {k: keras for k, (keras, _) in bundled.items()}
    defaults = ", ".join(f"{k} {number(v)}" for k, v in keras_defaults.items())
    parts.append((f"the torch formula with Keras' default {defaults}" if bundled else "the torch formula",
                  changed("torch", keras_defaults), base, against))
    for k, (_, torch_default) in bundled.items():
        parts.append((f"the Keras formula with torch's default {k} {number(torch_default)}",
                      changed(base_convention, {k: torch_default}), base, against))
    out = []
    for part, other, reference, name in parts:
        if not (reference.ok and other.ok):
            continue
        final = max((float(np.max(difference(reference.final_params[p], other.final_params[p])))
                     for p in reference.final_params), default=0.0)
        loss = (float(np.max(difference(reference.losses, other.losses))) if reference.steps == other.steps
                else float("inf"))
        out.append(Contribution(part, dtype, loss, final, name))
    return out
