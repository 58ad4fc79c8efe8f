"""One adapter per implementation, each with the same interface::

    available() -> str | None       # None, or why it cannot run here
    run(plan: TrainingPlan) -> Trajectory

Framework imports happen only inside the adapter modules' functions, so
importing the harness (``nn-parity list``) never loads TensorFlow or torch.
"""
from __future__ import annotations

import importlib
import time

from harness.run.plan import TrainingPlan
from harness.run.trajectory import Trajectory

FRAMEWORKS = ("numpy", "keras", "torch")
_MODULES = {
    "numpy": "harness.run.adapters.numpy_reference",
    "keras": "harness.run.adapters.keras_tf",
    "torch": "harness.run.adapters.torch_eager",
}


def adapter(framework: str):
    return importlib.import_module(_MODULES[framework])


def run_framework(framework: str, plan: TrainingPlan) -> Trajectory:
    """Run one implementation; a missing framework is skipped, a crash is recorded, never raised."""
    module = adapter(framework)
    reason = module.available()
    if reason is not None:
        return Trajectory.skipped(framework, plan.dtype, reason)
    start = time.perf_counter()
    try:
        trajectory = module.run(plan)
    except Exception as exc:  # a framework crash is a result to report, not a harness failure
        trajectory = Trajectory.crashed(framework, plan.dtype, exc)
    trajectory.seconds = time.perf_counter() - start
    return trajectory
