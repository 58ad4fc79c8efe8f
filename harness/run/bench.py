"""Timing of the adapters (``nn-parity bench``).

Each adapter is run once untimed (imports, graph tracing), then ``repeat``
times; the best wall time is kept, so ratios compare steady-state speed, and so is the best CPU
time (``time.process_time`` in the process that ran it: the harness's for the reference, the
worker's for a framework), whose ratios the machine's load moves far less than wall times.
The ``model.fit`` baseline is the naive loop the labs use (Keras only). The hand-written NumPy loop
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
              progress: Callable[[str], None]) -> tuple[list[dict], float | None]:
    """Each framework's best wall seconds and best CPU seconds, each as a ratio to the reference's,
    and the hand-written loop's wall seconds (``harness.run.hand_loop``; None where it is not
    defined), timed alternately with the reference so that both see the same load."""
    plan = make_plan(scenario, dtype)
    best: dict[str, float] = {}
    best_cpu: dict[str, float] = {}
    for framework in frameworks:
        timed: dict[str, Callable[[TrainingPlan], object]] = {framework: adapter(framework).run}
        if framework == REFERENCE and not_defined(scenario) is None:
            timed[HAND_LOOP] = hand_loop
        for run in timed.values():
            run(plan)  # warm-up: imports and tracing are not the loop's cost
        times: dict[str, list[float]] = {name: [] for name in timed}
        cpu: dict[str, list[float]] = {name: [] for name in timed}
        for _ in range(repeat):
            for name, run in timed.items():
                start, cpu_start = time.perf_counter(), time.process_time()
                run(plan)
                times[name].append(time.perf_counter() - start)
                cpu[name].append(_cpu_of(name, time.process_time() - cpu_start))
        for name, seconds in times.items():
            best[name], best_cpu[name] = min(seconds), min(cpu[name])
            progress(f"{scenario.name} x {name} ({dtype}): best of {repeat}: {best[name]:.3f} s, "
                     f"{best_cpu[name]:.3f} s CPU")
    hand = best.pop(HAND_LOOP, None)
    best_cpu.pop(HAND_LOOP, None)
    base, base_cpu = best.get(REFERENCE), best_cpu.get(REFERENCE)
    results = [{"framework": f, "dtype": dtype, "seconds": s, "ratio_to_numpy": None if base is None else s / base,
                "cpu_seconds": best_cpu[f], "cpu_ratio_to_numpy": None if base_cpu is None else best_cpu[f] / base_cpu}
               for f, s in best.items()]
    return results, hand


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
