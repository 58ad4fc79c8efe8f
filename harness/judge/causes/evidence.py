"""What a measured cause looks at (``Evidence``: a disagreeing pair at the step of its diagnosis, its
runs, scenarios, traces and plan) and what it reports (``Finding``), with the comparisons the
checks share.

The control runs explain differences a scenario *declares* (a convention, a clip, a learning rate).
A defect in code declares nothing, so the measured causes (``precision``, ``records``,
``updates``, ``layers``, ``factors``) measure it instead, on the pair at the step of its diagnosis,
from the runs' own records (``Trajectory.computed_dtypes``, ``Trajectory.batch_rows``, gradients
and parameters) and the stage-by-stage traces of that step. Each check returns a ``Finding`` only
when its measurement confirms it exactly (every element, within the agreement rule where rounding
enters); otherwise None, and "no known cause" stays honest.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import numpy.typing as npt

from harness.judge.runs import Runs
from harness.run.labels import framework_of
from harness.run.plan import TrainingPlan
from harness.run.trajectory import Trajectory
from harness.spec.scenario import Scenario
from harness.spec.tolerance import Tolerance, compare_elements

Trace = dict[str, np.ndarray]


CROSS_ENTROPIES = ("binary_crossentropy", "categorical_crossentropy")


@dataclass(frozen=True)
class Evidence:
    """A disagreeing (or drifting) pair at the step of its diagnosis, as the checks see it."""

    a: str  # the pair's labels
    b: str
    dtype: str
    step: int
    stage: str | None  # where within the step the difference shows (``Localisation.stage``)
    runs: dict[str, Trajectory]  # label -> its run
    scenarios: dict[str, Scenario]  # label -> the scenario it ran
    traces: dict[str, Trace]  # label -> its replay of ``step`` (missing when not traced)
    plan: TrainingPlan
    tolerance: Tolerance
    run_floor: Runs  # asks an implementation for its values at a point (``factors``)

    @property
    def sides(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """(side, other side), both ways."""
        return (self.a, self.b), (self.b, self.a)


@dataclass(frozen=True)
class Finding:
    """What a check measured; ``side`` is the implementation it points at (None: the measurement
    relates the two sides without saying which one is wrong)."""

    check: str
    side: str | None
    description: str

    @property
    def summary(self) -> str:
        return self.description

    def describe(self) -> str:
        return self.description


def dtype_eps(dtype: str) -> float:
    return float(np.finfo(np.dtype(dtype)).eps)


def agree(a: npt.ArrayLike, b: npt.ArrayLike, tol: Tolerance) -> bool:
    return not bool(compare_elements(np.atleast_1d(np.asarray(a)), np.atleast_1d(np.asarray(b)), tol).bad.any())


def ids(values: npt.ArrayLike, limit: int = 8) -> str:
    items = [int(v) for v in np.asarray(values).ravel()]
    return "[" + ", ".join(map(str, items[:limit])) + (", ..." if len(items) > limit else "") + "]"


def declares(runs: Runs, label: str, fact: str) -> bool:
    """``label``'s framework declares the arithmetic ``fact`` names (an ``Adapter`` attribute that is None
    where it computes as the reference: ``subnormals``, ``ties``)."""
    return getattr(runs.adapter(framework_of(label)), fact) is not None


def made_if_acting(acted: list[int], run: Callable[[TrainingPlan], Trajectory], plan: TrainingPlan,
                   step: int) -> Trajectory | None:
    """``run(plan)`` (a property's reference run, which counts in ``acted`` where the property acts) when the
    property acts by ``step``, where the pair parts: else that run's steps up to there are the reference's
    own, bit for bit, and cannot account for the difference (checked on those steps alone, so a pair
    parted by something else costs a short run); None otherwise."""
    before = acted[0]
    run(plan.first_steps(step + 1))
    return run(plan) if acted[0] > before else None
