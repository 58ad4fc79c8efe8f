"""``run_all``'s job slots (``harness.run.adapters.schedule``): the longest run first, another worker of
an implementation only when its runs are all that is left, the results the same in any order; and
the workers' leases (``workers.lease``): two calls at once never share a worker."""
from __future__ import annotations

import contextlib
import threading
from dataclasses import replace
from typing import Iterator

import pytest

from harness.run.adapters import run_all, schedule, use_jobs, workers
from harness.run.adapters.schedule import EXTRA_WORKER_COST, Slots, cost
from harness.run.adapters.workers import lease, more_workers, process_ids, stop, stop_all
from harness.run.plan import make_plan
from harness.spec.catalogue import catalogue_scenarios, resolve


def test_a_slot_takes_the_longest_run_of_an_implementation_with_a_free_worker() -> None:
    slots = Slots({"a": [0, 1, 2], "b": [3]}, {0: 1.0, 1: 5.0, 2: 3.0, 3: 4.0}, parallel=2)
    assert slots.take() == ("a", 1)  # the longest of all
    assert slots.take() == ("b", 3)  # a's worker is busy: b's
    assert slots.take() is None  # only a's runs are left, less work than a second worker's start: none
    assert (slots.allowed("a"), slots.allowed("b")) == (1, 1)
    slots.finished("a")
    assert slots.take() == ("a", 2)  # then a's runs longest first
    slots.finished("b")
    assert slots.take() is None
    assert slots.allowed("a") == 1


def test_a_second_worker_only_for_an_implementation_whose_runs_are_all_that_is_left() -> None:
    many = list(range(4))
    slots = Slots({"a": many, "b": [99]}, {**{i: EXTRA_WORKER_COST / 2 for i in many}, 99: 0.5}, parallel=2)
    assert slots.take() == ("a", 0)
    assert slots.take() == ("b", 99)  # a free implementation goes before a second worker of a
    assert slots.allowed("a") == 1
    assert slots.take() == ("a", 1)  # b's one run is taken: a second worker of a
    assert slots.allowed("a") == 2  # for the slot that took a's first run too, if it still waits for a worker
    assert slots.take() is None  # at most ``parallel`` workers of an implementation
    slots.finished("a")
    slots.finished("b")
    slots.finished("a")
    assert slots.take() == ("a", 2)
    assert slots.take() == ("a", 3)  # the two workers already started make the last runs
    assert slots.allowed("a") == 2


def test_the_cost_puts_the_long_catalogue_runs_first() -> None:
    long, short = (cost(make_plan(resolve(name), "float64")) for name in ("sigmoid-exponential", "backprop-exercise"))
    diverging = cost(make_plan(resolve("minibatch-diverging"), "float32"))
    assert long > diverging > short


def _torch_workers() -> list[str]:
    """The live torch workers (the pytest process may hold other implementations' from earlier tests)."""
    return sorted(name for name in process_ids() if name.split()[0] == "torch")


class _SecondSlotLeasesFirst:
    """Plants the order of the two slots' first leases: the slot that took the first run (one worker
    allowed then) asks for its worker only once the other slot (a second worker allowed) holds one,
    and that slot keeps its worker until the first slot has one too, or ``WAIT`` seconds."""

    WAIT = 30.0

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.takers: list[int] = []  # the slots' threads, in the order of their first ``take``
        self.pids: dict[str, int] = {}  # the worker of each slot's first lease: "first", "second"
        self._lock = threading.Lock()
        self._second_holds, self._first_holds = threading.Event(), threading.Event()
        real_take, self._real_lease = Slots.take, workers.lease

        def take(slots: Slots) -> object:
            with self._lock:  # recorded in the order the takes are made
                if threading.get_ident() not in self.takers:
                    self.takers.append(threading.get_ident())
                return real_take(slots)

        monkeypatch.setattr(Slots, "take", take)
        monkeypatch.setattr(workers, "lease", self.lease)

    @contextlib.contextmanager
    def lease(self, implementation: str) -> Iterator[workers.Worker]:
        me = threading.get_ident()
        role = next((name for name, n in (("first", 0), ("second", 1))
                     if len(self.takers) > n and self.takers[n] == me and name not in self.pids), None)
        if role == "first":
            self._second_holds.wait(self.WAIT)
        with self._real_lease(implementation) as leased:
            if role is not None:
                self.pids[role] = leased.process.pid
                (self._first_holds if role == "first" else self._second_holds).set()
            yield leased
            if role == "second":
                self._first_holds.wait(self.WAIT)


@pytest.mark.slow
def test_runs_in_two_slots_and_two_workers_are_the_runs_made_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight runs of 100 to 800 steps (made longest first in two slots, returned in the order asked);
    a second worker for a fifth of the work ``EXTRA_WORKER_COST`` asks, so that these short runs start
    one (eight whole runs of 4000 steps did, in 29 s of CPU instead of about 4). The slot that took the
    first run asks for a worker only once the other slot holds one (``_SecondSlotLeasesFirst``): it
    starts the second worker the schedule allows by then instead of waiting for the busy one (it
    waited, and the other slot made every run in one worker, once in seven runs of the suite)."""
    scenario = resolve("minibatch-diverging")
    plans = [make_plan(replace(scenario, name=f"n{i}"), "float64").first_steps(100 * (i + 1)) for i in range(8)]
    monkeypatch.setattr(schedule, "EXTRA_WORKER_COST", EXTRA_WORKER_COST / 5)
    assert sum(cost(p) for p in plans[:-1]) >= EXTRA_WORKER_COST / 5  # left when the first slot took the longest
    stop("torch")  # none left by an earlier test in this process
    try:
        alone = run_all([("torch", p) for p in plans], parallel=1)
        assert _torch_workers() == ["torch"]
        stop_all()
        order = _SecondSlotLeasesFirst(monkeypatch)
        with use_jobs(2):
            together = run_all([("torch", p) for p in plans])
        assert len(order.takers) == 2 and set(order.pids) == {"first", "second"}
        assert order.pids["first"] != order.pids["second"]  # a worker of its own, not the other slot's when freed
        assert _torch_workers() == ["torch", "torch 2"]  # two workers made them
    finally:
        stop_all()
    assert [a.losses.shape for a in alone] == [(100 * (i + 1),) for i in range(8)]
    assert all(a.ok and b.ok for a, b in zip(alone, together))
    for a, b in zip(alone, together):
        assert a.losses.tobytes() == b.losses.tobytes()
        assert all(a.final_params[k].tobytes() == b.final_params[k].tobytes() for k in a.final_params)


@pytest.mark.slow
def test_two_calls_at_once_lease_two_workers_only_when_allowed() -> None:
    seen: list[int] = []
    held = threading.Barrier(2, timeout=300)

    def call() -> None:
        with more_workers(2), lease("torch") as w:
            seen.append(w.process.pid)
            held.wait()  # both leases held at once: two workers

    try:
        threads = [threading.Thread(target=call) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert len(set(seen)) == 2
        with lease("torch") as first:
            got: list[int] = []
            other = threading.Thread(target=lambda: got.append(_lease_pid()))
            other.start()
            other.join(300)
            assert got and got[0] != first.process.pid  # the free worker, never the one another call holds
    finally:
        stop_all()


def _lease_pid() -> int:
    with lease("torch") as w:
        return w.process.pid


def test_forward_only_runs_cost_little() -> None:
    """A forward-only run (0.001-0.06 s of CPU) is no reason for another worker: the 52 of the catalogue
    once weighed as much as a quarter of its training runs and started a second TensorFlow worker."""
    forward = [make_plan(s, "float64") for s in catalogue_scenarios() if s.training is None]
    training = [make_plan(s, "float64") for s in catalogue_scenarios() if s.training is not None]
    assert len(forward) > 20
    assert max(map(cost, forward)) <= min(map(cost, training)) / 10
    assert sum(map(cost, forward)) < EXTRA_WORKER_COST / 10
