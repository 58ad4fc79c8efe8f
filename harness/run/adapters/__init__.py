"""The implementations, each one ``Adapter`` (``protocol.py``): the NumPy reference, Keras (on
TensorFlow), torch, and Keras on its other backends, ``keras@jax`` and ``keras@torch``, which run
in worker processes of their own (``workers.py``: Keras picks its backend once per process).

``ADAPTERS`` is typed as ``dict[str, Adapter]``, so the type checker verifies that every
adapter implements the whole interface. Framework imports happen only inside the
adapters' methods, so importing the harness (``nn-parity list``) never loads
TensorFlow or torch. Nothing outside this package imports a framework.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Callable, Iterator, Protocol

from harness.run import progress
from harness.run.adapters.keras_backends import ADAPTERS as KERAS_BACKENDS
from harness.run.adapters.keras_tf import ADAPTER as KERAS
from harness.run.adapters.numpy_reference import ADAPTER as NUMPY
from harness.run.adapters.protocol import Adapter, Params, check_expressible
from harness.run.adapters.schedule import cost, feed
from harness.run.adapters.torch_eager import ADAPTER as TORCH
from harness.run.adapters.workers import RemoteAdapter, WorkerCrashed, inline_active, stop_all
from harness.run.cache import RunCache
from harness.run.cache import current as current_cache
from harness.run.cache_key import key as cache_key
from harness.run.plan import TrainingPlan
from harness.run.spot_check import check_plan, run_difference, trace_difference
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
           "Executor", "check_expressible", "jobs", "run_all", "run_framework", "trace_framework", "use_executor",
           "use_jobs"]


def adapter(framework: str) -> Adapter:
    return ADAPTERS[framework]


def _cache() -> RunCache | None:
    """The command's run cache, unless a framework may be monkeypatched here (``inline()``)."""
    return None if inline_active() else current_cache()


def run_framework(framework: str, plan: TrainingPlan) -> Trajectory:
    """Run one implementation; a missing framework is skipped, a crash is recorded, never raised.
    A run found in the command's cache (``harness.run.cache``) is not made again."""
    return run_all([(framework, plan)], parallel=1)[0]


def _run(framework: str, plan: TrainingPlan) -> Trajectory:
    """One run, made (no cache): skipped when the framework is missing, crashed when it raises or
    its worker dies."""
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


def trace_framework(framework: str, plan: TrainingPlan, step: int) -> Params:
    """``Adapter.trace_step``, through the command's cache (under ``--verify-cache`` a cached trace
    is made again and compared bitwise: a trace is one step)."""
    cache = _cache()
    if cache is None:
        return adapter(framework).trace_step(plan, step)
    k = cache_key(framework, "trace_step", plan, step)
    found = cache.get(k)
    if isinstance(found, dict) and not cache.verify:
        return found
    trace = adapter(framework).trace_step(plan, step)
    if isinstance(found, dict):
        difference = trace_difference(found, trace)
        if difference is None:
            return found
        cache.warn(f"cached trace of {framework} ({plan.scenario.name}, {plan.dtype}, step {step}) no longer "
                   f"reproduces: {difference}; recomputed")
    cache.put(k, trace, made=(framework, "trace_step", plan, (step,)))
    return trace


_JOBS = {"parallel": os.cpu_count() or 1}


class Executor(Protocol):
    """Where runs are made when not in this machine's worker processes (``use_executor``)."""

    def run_many(self, jobs: list[tuple[int, tuple[str, TrainingPlan]]],
                 finish: Callable[[int, Trajectory], None]) -> None:
        """Make every ``(i, (framework, plan))`` run (as ``_run`` does: a crash is a ``crashed``
        trajectory, never raised) and call ``finish(i, trajectory)`` for each, in any order."""


_EXECUTOR: dict[str, Executor | None] = {"executor": None}


@contextlib.contextmanager
def use_executor(executor: Executor | None) -> Iterator[None]:
    """``run_all`` hands its runs to ``executor`` while the context lasts (None: the local workers)."""
    previous = _EXECUTOR["executor"]
    _EXECUTOR["executor"] = executor
    try:
        yield
    finally:
        _EXECUTOR["executor"] = previous


@contextlib.contextmanager
def use_jobs(n: int) -> Iterator[None]:
    """``run_all``'s default ``parallel`` while the context lasts (the commands' ``--jobs``)."""
    previous = _JOBS["parallel"]
    _JOBS["parallel"] = n
    try:
        yield
    finally:
        _JOBS["parallel"] = previous


def jobs() -> int:
    """How many implementations compute at once (``use_jobs``; the commands' ``--jobs``)."""
    return _JOBS["parallel"]


def run_all(jobs: list[tuple[str, TrainingPlan]], *, parallel: int | None = None,
            done: Callable[[int, Trajectory], None] | None = None) -> list[Trajectory]:
    """Every ``(framework, plan)`` run (``_run``); results in the order of ``jobs``, the same whatever
    ``parallel`` is. ``parallel`` 1: one run at a time, in order; more: ``parallel`` job slots
    (threads of this process) make the workers' runs, longest first, in as many workers at once,
    so a worker never waits for the reference (``harness.run.adapters.schedule``), while the
    reference runs here. A run found in the command's cache is not made again (under ``--verify-cache`` its
    first steps are, and a run that no longer reproduces is evicted, said, and made again:
    ``harness.run.spot_check``); a finished ``ok`` run is stored in it. ``done(i, trajectory)`` is
    called as each run finishes. Ctrl-C ends the workers."""
    return _run_all(jobs, parallel=_JOBS["parallel"] if parallel is None else parallel, done=done, cache=_cache())


def _run_all(jobs: list[tuple[str, TrainingPlan]], *, parallel: int,
             done: Callable[[int, Trajectory], None] | None, cache: RunCache | None) -> list[Trajectory]:
    results: list[Trajectory | None] = [None] * len(jobs)
    lock = threading.Lock()
    progress.expect(len(jobs), progress.RUNS)

    def finish(i: int, trajectory: Trajectory, k: str | None) -> None:
        progress.done(progress.RUNS)
        with lock:
            results[i] = trajectory
            if cache is not None and k is not None and trajectory.ok:
                framework, plan = jobs[i]
                cache.put(k, trajectory, made=(framework, "run", plan, ()))
            if done is not None:
                done(i, trajectory)

    keys: dict[int, str | None] = {}
    to_check: dict[int, Trajectory] = {}
    for i, (framework, plan) in enumerate(jobs):
        keys[i] = None
        if cache is not None and adapter(framework).available() is None:
            found_key = keys[i] = cache_key(framework, "run", plan)
            if isinstance(found := cache.get(found_key), Trajectory):
                if cache.verify:
                    to_check[i] = found
                else:
                    finish(i, found, None)
    if cache is not None and to_check:  # the spot check: each cached run's first steps, made again
        order = sorted(to_check)
        checks = _run_all([(jobs[i][0], check_plan(jobs[i][1])) for i in order], parallel=parallel, done=None,
                          cache=None)
        for i, check in zip(order, checks):
            difference = run_difference(to_check[i], check)
            if difference is None:
                finish(i, to_check[i], None)
                continue
            framework, plan = jobs[i]
            cache.warn(f"cached run of {framework} ({plan.scenario.name}, {plan.dtype}) no longer reproduces: "
                       f"{difference}; recomputed")
            cache.evict(keys[i] or "")
    queues: dict[str, list[tuple[int, str | None]]] = {}
    for i, (framework, _) in enumerate(jobs):
        if results[i] is None:
            queues.setdefault(framework, []).append((i, keys[i]))

    cancelled = threading.Event()

    def make(i: int) -> None:
        if cancelled.is_set():  # Ctrl-C: start nothing more (a new worker would run to the end)
            return
        trajectory = _run(*jobs[i])
        if cancelled.is_set():  # ended by the interrupt (its worker killed): not a result
            return
        finish(i, trajectory, keys[i])

    remote = [f for f, implementation in ((f, adapter(f)) for f in queues)
              if isinstance(implementation, RemoteAdapter) and not implementation.in_process]
    executor = _EXECUTOR["executor"]
    try:
        if executor is not None and not inline_active():  # e.g. Ray: each run one task, results alike
            pending = sorted(item for queue in queues.values() for item in queue)
            pending_keys = dict(pending)
            executor.run_many([(j, jobs[j]) for j, _ in pending], lambda j, t: finish(j, t, pending_keys[j]))
        elif parallel <= 1 or not remote:
            for i, pending_key in sorted(item for queue in queues.values() for item in queue):
                finish(i, _run(*jobs[i]), pending_key)
        else:  # longest first, in ``parallel`` job slots (``schedule``)
            feed({f: [i for i, _ in queues[f]] for f in remote},
                 [i for f in queues if f not in remote for i, _ in queues[f]], make,
                 costs={i: cost(jobs[i][1]) for f in remote for i, _ in queues[f]}, parallel=parallel,
                 cancelled=cancelled, cancel=lambda: _cancel(cancelled))
    except BaseException:  # Ctrl-C, SIGTERM (or a harness error): end the workers, whose feeders then return
        _cancel(cancelled)
        raise
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def _cancel(cancelled: threading.Event) -> None:
    """Start nothing more and end every worker: the feeders' calls then return at once."""
    cancelled.set()
    stop_all()
