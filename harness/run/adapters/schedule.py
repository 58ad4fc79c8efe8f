"""The order ``run_all`` makes its runs in, and which job slot makes each: longest first.

``parallel`` job slots (threads of the harness) each take the next run of a worker
implementation and make it in a worker of that implementation; the reference's runs are made
in the calling thread meanwhile. A slot takes, among the implementations that have a free worker
or none started yet, the longest run left (``cost``: steps, rows per step and units, known before
anything runs), so the longest runs start first and the last ones to finish are short; when only
implementations whose workers are all busy have runs left, a slot starts another worker of the
one with the most work left (its framework's import is paid again, so only when at least
``EXTRA_WORKER_COST`` of work and two runs are left: a second TensorFlow worker started for the
short runs at the end of the default catalogue made it slower), and otherwise ends. A slot waiting
for a busy worker of an implementation uses as many workers as the slots are allowed by then
(``Slots.allowed``), not as many as when it took its run. The order
changes no result: a run is a function of its plan, whichever worker makes it, and results are
returned in the order asked.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from typing import Callable

from harness.run.adapters.workers import more_workers, none_started_once
from harness.run.plan import TrainingPlan

EXTRA_WORKER_COST = 30_000.0  # another worker of an implementation only for this much work left (``cost``): a
# framework's import costs about as much as 8000 (Keras on torch: 6 s idle, a 4000-step run 4 s)
_SLICE = 0.2  # seconds: the longest the calling thread waits before it handles a pending signal


RUN_STEPS = 1000.0  # a run's fixed part (building, compiling, recording), in steps of a small network
STEP_WORK = 50_000.0  # rows x units in a step that cost as much as a step's fixed part (its Python calls)
FORWARD_RUN = 100.0  # a forward-only run (measured on the catalogue, CPU per run: 0.001-0.06 s, a training run's
# fixed part 0.2-2 s; counted as a training run, the 52 forward-only runs of the default catalogue looked like a
# quarter of its work and started a second TensorFlow worker, 3.7 s of import, for 0.5 s of runs)


def cost(plan: TrainingPlan) -> float:
    """A run's relative cost, known before it runs (measured on the catalogue: a step's fixed
    Python part dominates the small networks', the rows x units the large ones'): a fixed part
    per run plus, per step, a fixed part and rows per step x the units of every layer; a
    forward-only run, ``FORWARD_RUN``."""
    if plan.max_steps == 0:
        return FORWARD_RUN
    rows = plan.X.shape[0] / max(1, plan.batches_per_epoch)
    units = sum(layer.units for layer in plan.scenario.layers) + plan.X.shape[-1]
    return RUN_STEPS + plan.max_steps * (1.0 + rows * units / STEP_WORK)


class Slots:
    """The runs left per remote implementation, longest first, and the slots making them."""

    def __init__(self, queues: dict[str, list[int]], costs: dict[int, float], *, parallel: int) -> None:
        self.left = {f: sorted(q, key=lambda i: (-costs[i], i)) for f, q in queues.items() if q}
        self.costs = costs
        self.parallel = parallel
        self.busy: dict[str, int] = {f: 0 for f in self.left}  # runs being made, per implementation
        self.workers: dict[str, int] = {f: 0 for f in self.left}  # workers used so far, per implementation
        self._lock = threading.Lock()

    def take(self) -> tuple[str, int] | None:
        """(implementation, job) of the next run for a slot; None: nothing for it."""
        with self._lock:
            ready = [f for f, q in self.left.items() if q and self.busy[f] < max(1, self.workers[f])]
            if not ready:
                crowded = [f for f, q in self.left.items() if len(q) >= 2 and self.workers[f] < self.parallel
                           and sum(self.costs[i] for i in q) >= EXTRA_WORKER_COST]
                if not crowded:
                    return None
                ready = [max(crowded, key=lambda f: (sum(self.costs[i] for i in self.left[f]), f))]
            framework = max(ready, key=lambda f: (self.costs[self.left[f][0]], f))
            job = self.left[framework].pop(0)
            self.busy[framework] += 1
            self.workers[framework] = max(self.workers[framework], self.busy[framework])
            return framework, job

    def allowed(self, framework: str) -> int:
        """The workers of ``framework`` the slots may use now: as many as it has had runs made at
        once. Asked again by a slot that waits for a busy worker (``more_workers``), so that it
        takes the worker another slot was allowed meanwhile instead of waiting for the busy one
        (a slot that had taken its run with one worker allowed once waited while the other slot
        made every run in the one worker)."""
        with self._lock:
            return self.workers[framework]

    def finished(self, framework: str) -> None:
        with self._lock:
            self.busy[framework] -= 1


def feed(queues: dict[str, list[int]], local: list[int], make: Callable[[int], None], *, costs: dict[int, float],
         parallel: int, cancelled: threading.Event, cancel: Callable[[], None]) -> None:
    """Make every job of ``queues`` (remote implementation -> its jobs) in ``parallel`` slots, longest
    first, and ``local``'s in this thread; ``make(i)`` makes job i. This thread waits in short slices,
    so a Ctrl-C or a SIGTERM is handled at once whichever thread the kernel delivered it to."""
    slots = Slots(queues, costs, parallel=parallel)

    def slot() -> None:
        while not cancelled.is_set():  # Ctrl-C: start nothing more (a new worker would run to the end)
            taken = slots.take()
            if taken is None:
                return
            framework, job = taken
            try:
                with more_workers(partial(slots.allowed, framework)), none_started_once(cancelled):
                    make(job)
            finally:
                slots.finished(framework)

    pool = ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="nn-parity-feed")
    try:
        futures = [pool.submit(slot) for _ in range(max(1, min(parallel, sum(len(q) for q in queues.values()))))]
        for i in local:
            if cancelled.is_set():
                break
            make(i)
        while wait(futures, timeout=_SLICE).not_done:
            pass
        for future in futures:
            future.result()
    except BaseException:  # before the pool's shutdown waits for the slots: they return once it is done
        cancel()
        raise
    finally:
        pool.shutdown(wait=True)
