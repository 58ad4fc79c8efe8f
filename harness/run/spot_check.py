"""The run cache's live spot check: does a cached run still describe the implementation?

A cached run is made again for its first ``VERIFY_STEPS`` steps (all of a shorter run: every stage
of a step is reached once, and the optimizer's state carried into a second step) with the plan cut
there (``TrainingPlan.first_steps``), and the two are compared bitwise: the same computations in
the same process kind give the same bits, so any difference means the implementation (a patched
framework, another kernel the key missed) or the entry changed. A traced step is made again whole.
``harness.run.adapters.run_all`` and ``trace_framework`` apply it under ``--verify-cache``;
``nn-parity cache verify`` applies it to every entry.
"""
from __future__ import annotations

import numpy as np

from harness.run.plan import TrainingPlan
from harness.run.trajectory import Trajectory

VERIFY_STEPS = 2


def check_plan(plan: TrainingPlan) -> TrainingPlan:
    """The plan of the check run: ``plan`` cut after ``VERIFY_STEPS`` steps."""
    return plan.first_steps(VERIFY_STEPS)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == \
        np.ascontiguousarray(b).tobytes()


def _arrays_differ(a: dict[str, np.ndarray], b: dict[str, np.ndarray], index: int | None = None) -> str | None:
    """The first name whose arrays differ (at row ``index``), or None."""
    for name in list(a) + [n for n in b if n not in a]:
        if name not in a or name not in b:
            return name
        x, y = a[name], b[name]
        if index is not None:
            x, y = x[index], y[index]
        if not _same(x, y):
            return name
    return None


def run_difference(cached: Trajectory, fresh: Trajectory) -> str | None:
    """What differs between the cached run and ``fresh``, the check run of its first steps (None:
    they are bitwise the same over the steps ``fresh`` made)."""
    if not fresh.ok:
        return f"the check run {fresh.status}: {fresh.message}"
    steps = min(cached.steps, VERIFY_STEPS)
    if fresh.steps != steps:
        return f"it made {fresh.steps} steps where the cached run made {steps}"
    if _arrays_differ(cached.initial_params, fresh.initial_params) is not None:
        return "the initial parameters differ"
    for t in range(steps):
        if not _same(cached.losses[t], fresh.losses[t]):
            return f"step {t} differs (loss)"
        for what, a, b in (("gradient", cached.grads, fresh.grads), ("parameters", cached.params, fresh.params)):
            name = _arrays_differ(a, b, t)
            if name is not None:
                return f"step {t} differs ({what} {name})"
        if t < len(cached.batch_rows) and (t >= len(fresh.batch_rows) or
                                           not _same(cached.batch_rows[t], fresh.batch_rows[t])):
            return f"step {t} differs (the batch's rows)"
    pairs = [("the forward pass with the initial parameters", cached.outputs_initial, fresh.outputs_initial)]
    if cached.steps == fresh.steps:  # a run the check made whole (forward-only, or as short)
        pairs.append(("the forward pass with the final parameters", cached.outputs_final, fresh.outputs_final))
    for what, a_list, b_list in pairs:
        if len(a_list) != len(b_list) or not all(_same(a, b) for a, b in zip(a_list, b_list)):
            return f"{what} differs"
    for what, a_value, b_value in (("the dtypes it computed in differ", cached.computed_dtypes, fresh.computed_dtypes),
                                   ("its convention differs", cached.convention, fresh.convention),
                                   ("the operations it narrowed differ", cached.narrowed_ops, fresh.narrowed_ops)):
        if a_value != b_value:
            return what
    return None


def trace_difference(cached: dict[str, np.ndarray], fresh: dict[str, np.ndarray]) -> str | None:
    """The first stage whose values differ between a cached trace and the same step traced again."""
    if list(cached) != list(fresh):
        return "its stages differ"
    name = _arrays_differ(cached, fresh)
    return None if name is None else f"stage {name} differs"
