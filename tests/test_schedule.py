"""``run_all``'s job slots (``harness.run.adapters.schedule``): the longest run first, another worker of
an implementation only when its runs are all that is left, the results the same in any order; and
the workers' leases (``workers.lease``): two calls at once never share a worker."""
from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from harness.run.adapters import run_all, schedule, use_jobs
from harness.run.adapters.schedule import EXTRA_WORKER_COST, Slots, cost
from harness.run.adapters.workers import lease, more_workers, process_ids, stop, stop_all
from harness.run.plan import make_plan
from harness.spec.catalogue import catalogue_scenarios, resolve


def test_a_slot_takes_the_longest_run_of_an_implementation_with_a_free_worker() -> None:
    slots = Slots({"a": [0, 1, 2], "b": [3]}, {0: 1.0, 1: 5.0, 2: 3.0, 3: 4.0}, parallel=2)
    assert slots.take() == ("a", 1, 1)  # the longest of all
    assert slots.take() == ("b", 3, 1)  # a's worker is busy: b's
    assert slots.take() is None  # only a's runs are left, less work than a second worker's start: none
    slots.finished("a")
    assert slots.take() == ("a", 2, 1)  # then a's runs longest first
    slots.finished("b")
    assert slots.take() is None


def test_a_second_worker_only_for_an_implementation_whose_runs_are_all_that_is_left() -> None:
    many = list(range(4))
    slots = Slots({"a": many, "b": [99]}, {**{i: EXTRA_WORKER_COST / 2 for i in many}, 99: 0.5}, parallel=2)
    assert slots.take() == ("a", 0, 1)
    assert slots.take() == ("b", 99, 1)  # a free implementation goes before a second worker of a
    assert slots.take() == ("a", 1, 2)  # b's one run is taken: a second worker of a
    assert slots.take() is None  # at most ``parallel`` workers of an implementation
    slots.finished("a")
    slots.finished("b")
    slots.finished("a")
    assert slots.take() == ("a", 2, 2)
    assert slots.take() == ("a", 3, 2)  # the two workers already started make the last runs


def test_the_cost_puts_the_long_catalogue_runs_first() -> None:
    long, short = (cost(make_plan(resolve(name), "float64")) for name in ("sigmoid-exponential", "backprop-exercise"))
    diverging = cost(make_plan(resolve("minibatch-diverging"), "float32"))
    assert long > diverging > short


def _torch_workers() -> list[str]:
    """The live torch workers (the pytest process may hold other implementations' from earlier tests)."""
    return sorted(name for name in process_ids() if name.split()[0] == "torch")


@pytest.mark.slow
def test_runs_in_two_slots_and_two_workers_are_the_runs_made_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight runs of 100 to 800 steps (made longest first in two slots, returned in the order asked);
    a second worker for a fifth of the work ``EXTRA_WORKER_COST`` asks, so that these short runs start
    one (eight whole runs of 4000 steps did, in 29 s of CPU instead of about 4)."""
    scenario = resolve("minibatch-diverging")
    plans = [make_plan(replace(scenario, name=f"n{i}"), "float64").first_steps(100 * (i + 1)) for i in range(8)]
    monkeypatch.setattr(schedule, "EXTRA_WORKER_COST", EXTRA_WORKER_COST / 5)
    assert sum(cost(p) for p in plans[:-1]) >= EXTRA_WORKER_COST / 5  # left when the first slot took the longest
    stop("torch")  # none left by an earlier test in this process
    try:
        alone = run_all([("torch", p) for p in plans], parallel=1)
        assert _torch_workers() == ["torch"]
        stop_all()
        with use_jobs(2):
            together = run_all([("torch", p) for p in plans])
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
