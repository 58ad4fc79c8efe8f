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
from multiprocessing.connection import wait
from typing import Callable

from harness.run.adapters.keras_backends import ADAPTERS as KERAS_BACKENDS
from harness.run.adapters.keras_tf import ADAPTER as KERAS
from harness.run.adapters.numpy_reference import ADAPTER as NUMPY
from harness.run.adapters.protocol import Adapter, Params, check_expressible
from harness.run.adapters.torch_eager import ADAPTER as TORCH
from harness.run.adapters.torch_eager import gpu_visibility as torch_gpu_visibility
from harness.run.adapters.workers import RemoteAdapter, Worker, WorkerCrashed, has_worker
from harness.run.plan import TrainingPlan
from harness.run.trajectory import CRASHED, Trajectory

REFERENCE = NUMPY.name  # the implementation every other one is checked against
ADAPTERS: dict[str, Adapter] = {
    NUMPY.name: NUMPY,
    KERAS.name: RemoteAdapter(KERAS, in_process_ok=True),
    TORCH.name: RemoteAdapter(TORCH, in_process_ok=True),
    **{name: RemoteAdapter(local) for name, local in KERAS_BACKENDS.items()},
}
FRAMEWORKS: tuple[str, ...] = (NUMPY.name, KERAS.name, TORCH.name)  # the default set
ALL_FRAMEWORKS: tuple[str, ...] = tuple(ADAPTERS)  # `--frameworks all`
ALIASES = {"keras@tensorflow": KERAS.name}  # Keras' default backend: the same implementation

__all__ = ["ADAPTERS", "ALIASES", "ALL_FRAMEWORKS", "FRAMEWORKS", "REFERENCE", "Adapter", "Params", "adapter",
           "check_expressible", "gpu_visibility", "run_all", "run_framework"]


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
    trajectory.seconds = trajectory.seconds or time.perf_counter() - start  # a worker times its own run
    return trajectory


def run_all(jobs: list[tuple[str, TrainingPlan]], *,
            done: Callable[[int, Trajectory], None] | None = None) -> list[Trajectory]:
    """``run_framework`` for every ``(framework, plan)``, the workers of different implementations
    computing at the same time while the reference runs here (each worker takes one job at a
    time, in the order given); results in the order of ``jobs``, whatever finishes first.
    ``done(i, trajectory)`` is called as each job finishes."""
    results: list[Trajectory | None] = [None] * len(jobs)
    queues: dict[str, list[int]] = {}
    here: list[int] = []
    for i, (framework, _) in enumerate(jobs):
        implementation = adapter(framework)
        remote = isinstance(implementation, RemoteAdapter) and not implementation.in_process
        if remote and implementation.available() is None:
            queues.setdefault(framework, []).append(i)
        else:
            here.append(i)
    busy: dict[str, tuple[int, Worker]] = {}

    def finish(i: int, trajectory: Trajectory) -> None:
        results[i] = trajectory
        if done is not None:
            done(i, trajectory)

    def feed() -> None:
        for framework, queue in queues.items():
            while framework not in busy and queue:
                i = queue.pop(0)
                implementation = adapter(framework)
                assert isinstance(implementation, RemoteAdapter)
                try:
                    w = implementation.start("run", jobs[i][1])
                except WorkerCrashed as exc:
                    finish(i, Trajectory(framework=framework, dtype=jobs[i][1].dtype, status=CRASHED, message=str(exc)))
                    continue
                assert w is not None, "a remote implementation outside inline() has a worker"
                busy[framework] = (i, w)

    def collect(framework: str) -> None:
        i, w = busy.pop(framework)
        dtype = jobs[i][1].dtype
        try:
            trajectory = w.receive()
        except WorkerCrashed as exc:
            trajectory = Trajectory(framework=framework, dtype=dtype, status=CRASHED, message=str(exc))
        except Exception as exc:  # the framework raised: a result, as in run_framework
            trajectory = Trajectory.crashed(framework, dtype, exc)
        finish(i, trajectory)

    feed()
    for i in here:
        finish(i, run_framework(*jobs[i]))
        for framework in [f for f, (_, w) in busy.items() if w.ready()]:
            collect(framework)
        feed()
    while busy:
        ready = wait([w.connection for _, w in busy.values()])
        for framework in [f for f, (_, w) in busy.items() if w.connection in ready]:
            collect(framework)
        feed()
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def gpu_visibility() -> str:
    """Whether torch saw a GPU (runs never use one), asked where torch runs: its worker, or this
    process under ``inline()``; "not checked" when torch did not run."""
    torch = ADAPTERS[TORCH.name]
    assert isinstance(torch, RemoteAdapter)
    if torch.in_process:
        return torch_gpu_visibility()
    if not has_worker(TORCH.name):
        return "GPU: not checked (torch did not run)"
    return torch.gpu_visibility()
