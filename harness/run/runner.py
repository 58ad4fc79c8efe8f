"""Which runs a scenario needs, and the runs made: the implementations per optimizer convention,
the pairs to compare, whether the runs can be made at all, and the runs themselves.

Implementations are labelled by framework (``numpy``, ``keras``, ``torch``; ``harness.run.labels``).
When the scenario's optimizer computes different arithmetic in Keras and torch
(``harness.spec.conventions``) and the scenario pins no convention, each framework runs its own
convention and the reference runs once per convention, labelled ``numpy[keras]`` and
``numpy[torch]``. The pairs compared are then the reference against the framework of the same
convention, the two reference runs (what the convention alone changes), and the frameworks
against each other (``pairs_of``).

This floor produces trajectories and judges nothing: comparing them, the control runs a
disagreement calls for and the explanations are ``harness.judge``'s, run in order by
``harness.pipeline``.
"""
from __future__ import annotations

from typing import Callable, Mapping

from harness.run.adapters import FRAMEWORKS, REFERENCE, adapter, check_expressible, run_all
from harness.run.budget import check_budget
from harness.run.labels import framework_of, pairs_of, reference_in, with_convention
from harness.run.plan import TrainingPlan
from harness.run.progress import Progress
from harness.run.trajectory import Trajectory
from harness.spec.conventions import COMMON, convention_difference, pinned
from harness.spec.scenario import DTYPES, Scenario


def implementations(scenario: Scenario, frameworks: tuple[str, ...]) -> dict[str, Scenario]:
    """label -> the scenario that implementation runs (see the module docstring)."""
    labels = {fw: scenario for fw in frameworks}
    if REFERENCE not in frameworks or scenario.training is None:
        return labels
    spec = scenario.training.optimizer
    if pinned(spec) is not None or convention_difference(spec) is None:
        return labels
    others = [adapter(fw).native_convention(spec) for fw in frameworks if fw != REFERENCE]
    # the reference alone: the conventions of the default frameworks (Keras on TensorFlow and torch)
    conventions = list(dict.fromkeys(others or (adapter(fw).native_convention(spec) for fw in FRAMEWORKS
                                                if fw != REFERENCE)))
    out = {}
    for fw in frameworks:
        if fw == REFERENCE:
            out.update({reference_in(c): with_convention(scenario, c) for c in conventions})
        else:
            out[fw] = scenario
    return out


def planned_convention(label: str, scenario: Scenario) -> str:
    """The optimizer convention the implementation ``label`` computes when it runs ``scenario``."""
    if scenario.training is None:
        return COMMON
    return adapter(framework_of(label)).native_convention(scenario.training.optimizer)


def planned_pairs(scenario: Scenario, frameworks: tuple[str, ...] = FRAMEWORKS) -> list[tuple[str, str]]:
    """The pairs ``run_scenario`` compares (per dtype), known before anything runs."""
    labels = implementations(scenario, frameworks)
    return pairs_of(list(labels), {label: planned_convention(label, s) for label, s in labels.items()})


def check_runnable(scenario: Scenario, *, frameworks: tuple[str, ...] = FRAMEWORKS, dtypes: tuple[str, ...] = DTYPES,
                   max_bytes: int | None = None, sides: Mapping[str, Scenario] | None = None) -> None:
    """``BadInput`` before anything runs: a convention a framework's optimizer cannot compute, or
    runs that would not fit in memory (``harness.run.budget``)."""
    planned = implementations(scenario, frameworks)
    for label, ran in {**planned, **dict(sides or {})}.items():
        if ran.training is not None:
            check_expressible(adapter(framework_of(label)), ran.training.optimizer, file=ran.path)
    check_budget(scenario, runs_per_dtype=len(planned), dtypes=dtypes, max_bytes=max_bytes)


def make_runs(cells: list[tuple[str, str, TrainingPlan]], progress: Progress | None, *, parallel: int | None = None,
              each: Callable[[int, Trajectory], None] | None = None) -> list[Trajectory]:
    """Each cell's run (``(scenario name, label, plan)``: the implementation ``label`` running the
    plan), all in one ``run_all`` (``parallel``: its job slots), each labelled, reported to ``progress``
    and given to ``each(i, run)`` as it finishes."""
    def done(i: int, run: Trajectory) -> None:
        name, label, plan = cells[i]
        run.framework = label
        if progress is not None:
            extra = f" ({run.message})" if run.message else ""
            progress(f"{name} x {label} ({plan.dtype}): {run.status}, {run.steps} steps, "
                     f"{run.seconds:.1f} s{extra}")
        if each is not None:
            each(i, run)

    return run_all([(framework_of(label), plan) for _, label, plan in cells], parallel=parallel, done=done)
