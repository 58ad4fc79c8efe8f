"""What the judge asks of the run floor, through an object it is given (``Runs``): a run, a step's
trace, an implementation's facts (its narrowing rule, its native convention, its gradients at a
point) and whether a variant can run at all.

The judge makes no run of its own choosing: every control run, trace and framework measurement
goes through the ``Runs`` it is handed, so the judge imports nothing that makes runs (the
adapters' registry, the workers, the cache, the runner). ``harness.pipeline.RUNS`` is the one
that runs through the adapters, their worker processes and the run cache.
"""
from __future__ import annotations

from typing import Protocol

from harness.run.adapters.protocol import Adapter, Params
from harness.run.labels import framework_of
from harness.run.plan import TrainingPlan
from harness.run.trajectory import Trajectory
from harness.spec.scenario import Scenario


class Runs(Protocol):
    """The run floor, as the judge sees it."""

    @property
    def frameworks(self) -> tuple[str, ...]:
        """Every implementation there is (``--frameworks all``), run or not."""

    def adapter(self, framework: str) -> Adapter:
        """The implementation's facts: ``narrowing_rule``, ``native_convention``, ``gradients``."""

    def run(self, framework: str, plan: TrainingPlan) -> Trajectory:
        """One run (a crash recorded, never raised; from the run cache when it holds it)."""

    def trace(self, framework: str, plan: TrainingPlan, step: int) -> Params:
        """``Adapter.trace_step``: ``step`` replayed stage by stage."""

    def check_runnable(self, scenario: Scenario, *, frameworks: tuple[str, ...], dtypes: tuple[str, ...]) -> None:
        """``BadInput`` when the implementations cannot run ``scenario`` (a convention their optimizer
        classes cannot compute, runs that would not fit in memory)."""


def narrowed(runs: Runs, label: str, run: Trajectory) -> bool:
    """A run whose framework has a narrowing rule (``Adapter.narrowing_rule``) and that narrowed
    operations (``Trajectory.narrowed_ops``): a control run with the rule off can tell its share."""
    return run.ok and bool(run.narrowed_ops) and runs.adapter(framework_of(label)).narrowing_rule is not None
