"""The implementations, each one ``Adapter`` (``protocol.py``): the NumPy reference, Keras (on
TensorFlow), torch, and Keras on its other backends, ``keras@jax`` and ``keras@torch``, which run
in worker processes of their own (``workers.py``: Keras picks its backend once per process).

``ADAPTERS`` is typed as ``dict[str, Adapter]``, so the type checker verifies that every
adapter implements the whole interface. Framework imports happen only inside the
adapters' methods, so importing the harness (``nn-parity list``) never loads
TensorFlow or torch. Nothing outside this package imports a framework.
"""
from __future__ import annotations

import time

from harness.run.adapters.keras_backends import ADAPTERS as KERAS_BACKENDS
from harness.run.adapters.keras_tf import ADAPTER as KERAS
from harness.run.adapters.numpy_reference import ADAPTER as NUMPY
from harness.run.adapters.protocol import Adapter, Params, check_expressible
from harness.run.adapters.torch_eager import ADAPTER as TORCH
from harness.run.adapters.torch_eager import gpu_visibility
from harness.run.adapters.workers import RemoteAdapter, WorkerCrashed
from harness.run.plan import TrainingPlan
from harness.run.trajectory import CRASHED, Trajectory

REFERENCE = NUMPY.name  # the implementation every other one is checked against
ADAPTERS: dict[str, Adapter] = {NUMPY.name: NUMPY, KERAS.name: KERAS, TORCH.name: TORCH,
                                 **{name: RemoteAdapter(local) for name, local in KERAS_BACKENDS.items()}}
FRAMEWORKS: tuple[str, ...] = (NUMPY.name, KERAS.name, TORCH.name)  # the default set
ALL_FRAMEWORKS: tuple[str, ...] = tuple(ADAPTERS)  # `--frameworks all`
ALIASES = {"keras@tensorflow": KERAS.name}  # Keras' default backend: the same implementation

__all__ = ["ADAPTERS", "ALIASES", "ALL_FRAMEWORKS", "FRAMEWORKS", "REFERENCE", "Adapter", "Params", "adapter",
           "check_expressible", "gpu_visibility", "run_framework"]


def adapter(framework: str) -> Adapter:
    return ADAPTERS[framework]


def run_framework(framework: str, plan: TrainingPlan) -> Trajectory:
    """Run one implementation; a missing framework is skipped, a crash is recorded, never raised."""
    implementation = adapter(framework)
    reason = implementation.available()
    if reason is not None:
        return Trajectory.skipped(framework, plan.dtype, reason)
    start = time.perf_counter()
    try:
        trajectory = implementation.run(plan)
    except WorkerCrashed as exc:  # the worker process died or hung: its reason, as it is
        trajectory = Trajectory(framework=framework, dtype=plan.dtype, status=CRASHED, message=str(exc))
    except Exception as exc:  # a framework crash is a result to report, not a harness failure
        trajectory = Trajectory.crashed(framework, plan.dtype, exc)
    trajectory.seconds = time.perf_counter() - start
    return trajectory
