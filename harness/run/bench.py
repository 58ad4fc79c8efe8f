"""Timing of the adapters (``nn-parity bench``).

Each adapter is run once untimed (imports, graph tracing), then ``repeat`` times, each time right
after a run of the reference, so that every ratio compares two implementations timed in turn under
the same load (the machine's load changes over a bench of minutes: a reference timed only at the
start would move every later ratio). The best wall time is kept, and so is the best CPU time
(``time.process_time`` in the process that ran it: the harness's for the reference, the worker's for
a framework), whose ratios the machine's load moves far less than wall times. The ``model.fit``
baseline is the naive loop the labs use (Keras only). The hand-written NumPy loop
(``harness.run.hand_loop``, where it is defined) is the reference's own baseline: the same maths,
written as a plain loop, timed in turn with the reference.
"""
from __future__ import annotations

import time
from typing import Callable

from harness.run.adapters import REFERENCE, adapter
from harness.run.adapters.workers import RemoteAdapter, cpu_seconds
from harness.run.hand_loop import hand_loop, not_defined
from harness.run.plan import TrainingPlan, make_plan
from harness.spec.scenario import Scenario

HAND_LOOP = "hand loop"


def time_runs(scenario: Scenario, *, frameworks: tuple[str, ...], dtype: str, repeat: int,
              progress: Callable[[str], None]) -> tuple[list[dict], dict | None]:
    """Each framework's best wall seconds and best CPU seconds, and the reference's best timed in turn
    with it (``reference_seconds``, ``reference_cpu_seconds``), each ratio to those; and the
    hand-written loop's row (``harness.run.hand_loop``; None where it is not defined), timed in turn
    with the reference too. The reference's own row has its best over the whole bench."""
    plan = make_plan(scenario, dtype)
    reference = adapter(REFERENCE).run if REFERENCE in frameworks else None
    others = [f for f in frameworks if f != REFERENCE]
    if reference is not None and not_defined(scenario) is None:
        others.insert(0, HAND_LOOP)
    if reference is not None:
        reference(plan)  # warm-up
    rows: dict[str, dict] = {}
    reference_times: list[tuple[float, float]] = []
    for name in others:
        run: Callable[[TrainingPlan], object] = hand_loop if name == HAND_LOOP else adapter(name).run
        run(plan)  # warm-up: imports and tracing are not the loop's cost
        timed = {REFERENCE: reference, name: run} if reference is not None else {name: run}
        best = {k: (float("inf"), float("inf")) for k in timed}
        for _ in range(repeat):
            for key, call in timed.items():
                assert call is not None
                seconds, cpu = _time(call, plan, key)
                best[key] = (min(best[key][0], seconds), min(best[key][1], cpu))
                if key == REFERENCE:
                    reference_times.append((seconds, cpu))
        rows[name] = _row(name, dtype, best[name], best.get(REFERENCE))
        progress(f"{scenario.name} x {name} ({dtype}): best of {repeat}: {best[name][0]:.3f} s, {best[name][1]:.3f} s "
                 "CPU" + ("" if reference is None else
                          f"; the {REFERENCE} reference beside it: {best[REFERENCE][0]:.3f} s, "
                          f"{best[REFERENCE][1]:.3f} s CPU"))
    if reference is not None:
        if not reference_times:  # the reference alone
            for _ in range(repeat):
                reference_times.append(_time(reference, plan, REFERENCE))
        own = (min(t[0] for t in reference_times), min(t[1] for t in reference_times))
        progress(f"{scenario.name} x {REFERENCE} ({dtype}): best of {len(reference_times)}: {own[0]:.3f} s, "
                 f"{own[1]:.3f} s CPU")
        rows = {REFERENCE: _row(REFERENCE, dtype, own, own), **rows}
    hand = rows.pop(HAND_LOOP, None)
    return [rows[f] for f in frameworks if f in rows], hand


def _time(run: Callable[[TrainingPlan], object], plan: TrainingPlan, name: str) -> tuple[float, float]:
    """The wall seconds and the CPU seconds of one run (``_cpu_of``)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    run(plan)
    return time.perf_counter() - start, _cpu_of(name, time.process_time() - cpu_start)


def _row(name: str, dtype: str, best: tuple[float, float], reference: tuple[float, float] | None) -> dict:
    """A framework's figures and its ratios to the reference timed in turn with it (None without one)."""
    seconds, cpu = best
    return {"framework": name, "dtype": dtype, "seconds": seconds,
            "ratio_to_numpy": None if reference is None else seconds / reference[0],
            "cpu_seconds": cpu, "cpu_ratio_to_numpy": None if reference is None else cpu / reference[1],
            "reference_seconds": None if reference is None else reference[0],
            "reference_cpu_seconds": None if reference is None else reference[1]}


def _cpu_of(name: str, here: float) -> float:
    """The CPU seconds of the run ``name`` just made: its worker's own (``workers.cpu_seconds``), or
    ``here``, this process's, for what ran in this process (the reference, the hand loop, ``inline()``)."""
    implementation = None if name == HAND_LOOP else adapter(name)
    measured = cpu_seconds(name) if isinstance(implementation, RemoteAdapter) and not implementation.in_process \
        else None
    return here if measured is None else measured


def time_fit_baselines(scenario: Scenario, *, frameworks: tuple[str, ...], dtype: str) -> dict[str, float]:
    """Seconds of each framework's own high-level training loop (Keras' ``model.fit``), for
    the frameworks that have one."""
    plan = make_plan(scenario, dtype)
    seconds = {fw: adapter(fw).fit_baseline_seconds(plan) for fw in frameworks}
    return {fw: s for fw, s in seconds.items() if s is not None}
