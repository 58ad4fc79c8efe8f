"""Runs as Ray tasks (``--executor ray [--address ADDR]``), for course teams with a cluster.

An optional extra (``pip install nn-parity[ray]``). Each run (an implementation, a dtype, a
scenario: one cell) is one Ray task with one CPU; the task makes the run exactly as the local
executor does (``harness.run.adapters._run``: the reference in the task's process, every
framework in a worker process the task's process spawns and keeps for its later tasks), so the
results are the same bytes. The harness still makes the plan (data, initial weights, batch
order) and sends it with the task; the trajectory comes back. Without ``--address`` a local Ray
instance is started on this machine's cores; with one, the cluster must have this harness and the
same pinned packages installed.
"""
from __future__ import annotations

import importlib.util
import re
import socket
from typing import Any, Callable

from harness.errors import BadInput
from harness.run.plan import TrainingPlan
from harness.run.trajectory import Trajectory

EXTRA = "pip install 'nn-parity[ray]'"
CONNECT_TIMEOUT = 10.0  # seconds to reach a cluster's address before Ray is asked to (it waits for ever)


def missing() -> str | None:
    """Why the Ray executor cannot be used here, or None."""
    return None if importlib.util.find_spec("ray") is not None else f"ray is not installed ({EXTRA})"


def unreachable(address: str, *, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """Why nothing answers at ``HOST:PORT`` or ``ray://HOST:PORT`` (a TCP connection refused, or none
    within ``timeout`` seconds), or None (``auto``: Ray finds the cluster itself)."""
    form = re.fullmatch(r"(?:ray://)?\[?(?P<host>[^\[\]]+?)\]?:(?P<port>[0-9]+)", address)
    if form is None:
        return None
    try:
        socket.create_connection((form["host"], int(form["port"])), timeout=timeout).close()
    except OSError as exc:
        return f"nothing answers there within {timeout:g} s ({exc.strerror or type(exc).__name__})"
    return None


def _task(framework: str, plan: TrainingPlan) -> Trajectory:
    from harness.run.adapters import _run  # the task runs in a Ray worker process

    return _run(framework, plan)


class RayExecutor:
    """``harness.run.adapters.Executor`` on Ray: one task with one CPU per run."""

    def __init__(self, *, address: str | None = None, num_cpus: int | None = None) -> None:
        import ray

        self._ray = ray
        reason = None if address is None else unreachable(address)
        if reason is not None:
            raise BadInput("nn-parity", "--address", "the address of a running Ray cluster", f"{address}: {reason}")
        if not ray.is_initialized():
            ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_task)

    def run_many(self, jobs: list[tuple[int, tuple[str, TrainingPlan]]],
                 finish: Callable[[int, Trajectory], None]) -> None:
        ray = self._ray
        pending: dict[Any, tuple[int, str, str]] = {
            self._remote.remote(framework, plan): (i, framework, plan.dtype) for i, (framework, plan) in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i, framework, dtype = pending.pop(ref)
                try:
                    trajectory = ray.get(ref)
                except Exception as exc:  # the task's process died, or Ray failed it: a crashed run
                    trajectory = Trajectory.crashed(framework, dtype, exc)
                finish(i, trajectory)
