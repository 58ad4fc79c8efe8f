"""Timing of the adapters (``nn-parity bench``).

Each adapter is run once untimed (imports, graph tracing), then ``repeat``
times; the best wall time is kept, so ratios compare steady-state speed.
The ``model.fit`` baseline is the naive loop the labs use (Keras only). The hand-written NumPy loop
(``harness.run.hand_loop``, where it is defined) is the reference's own baseline: the same maths,
written as a plain loop, timed in turn with the reference.

``time_catalogue`` times every catalogue scenario's runs (numpy, keras, torch, both dtypes)
three ways in one command: one run at a time, with ``jobs`` implementations computing at once,
and again from the cache the second pass filled. Each pass starts fresh workers, so each pays
the frameworks' imports once.
"""
from __future__ import annotations

import tempfile
import time
from typing import Any, Callable

from harness.pipeline import prepare, run_scenarios
from harness.run.adapters import REFERENCE, adapter, use_jobs
from harness.run.adapters.workers import stop_all
from harness.run.cache import use_cache
from harness.run.hand_loop import hand_loop, not_defined
from harness.run.plan import TrainingPlan, make_plan
from harness.spec.scenario import Scenario

HAND_LOOP = "hand loop"


def time_runs(scenario: Scenario, *, frameworks: tuple[str, ...], dtype: str, repeat: int,
              progress: Callable[[str], None]) -> tuple[list[dict], float | None]:
    """Each framework's best wall seconds, as a ratio to the reference's, and the hand-written loop's
    (``harness.run.hand_loop``; None where it is not defined), timed alternately with the reference
    so that both see the same load."""
    plan = make_plan(scenario, dtype)
    best: dict[str, float] = {}
    for framework in frameworks:
        timed: dict[str, Callable[[TrainingPlan], object]] = {framework: adapter(framework).run}
        if framework == REFERENCE and not_defined(scenario) is None:
            timed[HAND_LOOP] = hand_loop
        for run in timed.values():
            run(plan)  # warm-up: imports and tracing are not the loop's cost
        times: dict[str, list[float]] = {name: [] for name in timed}
        for _ in range(repeat):
            for name, run in timed.items():
                start = time.perf_counter()
                run(plan)
                times[name].append(time.perf_counter() - start)
        for name, seconds in times.items():
            best[name] = min(seconds)
            progress(f"{scenario.name} x {name} ({dtype}): best of {repeat}: {best[name]:.3f} s")
    hand = best.pop(HAND_LOOP, None)
    base = best.get(REFERENCE)
    results = [{"framework": f, "dtype": dtype, "seconds": s, "ratio_to_numpy": None if base is None else s / base}
               for f, s in best.items()]
    return results, hand


def time_fit_baselines(scenario: Scenario, *, frameworks: tuple[str, ...], dtype: str) -> dict[str, float]:
    """Seconds of each framework's own high-level training loop (Keras' ``model.fit``), for
    the frameworks that have one."""
    plan = make_plan(scenario, dtype)
    seconds = {fw: adapter(fw).fit_baseline_seconds(plan) for fw in frameworks}
    return {fw: s for fw, s in seconds.items() if s is not None}


def time_catalogue(scenarios: list[Scenario], *, jobs: int, progress: Callable[[str], None]) -> dict[str, Any]:
    """``serial_seconds``, ``parallel_seconds`` and ``cached_seconds`` of running ``scenarios``, and
    whether the three passes gave the same verdicts (``same_results``)."""
    def one_pass(name: str, parallel: int, cache: str | None) -> tuple[float, list[bool]]:
        stop_all()  # fresh workers: every pass pays the frameworks' imports
        start = time.perf_counter()
        with use_cache(cache), use_jobs(parallel):  # all the runs at once, as `nn-parity report` makes them
            verdicts = [r.ok for r in run_scenarios([prepare(s) for s in scenarios])]
        seconds = time.perf_counter() - start
        progress(f"catalogue, {name} ({len(scenarios)} scenarios): {seconds:.1f} s")
        return seconds, verdicts

    with tempfile.TemporaryDirectory(prefix="nn-parity-bench-cache-") as folder:
        serial, v1 = one_pass("one run at a time", 1, None)
        parallel, v2 = one_pass(f"--jobs {jobs}", jobs, folder)
        cached, v3 = one_pass("from the cache", jobs, folder)
    stop_all()
    return {"scenarios": len(scenarios), "jobs": jobs, "serial_seconds": serial, "parallel_seconds": parallel,
            "cached_seconds": cached, "parallel_ratio": parallel / serial, "cached_ratio": cached / serial,
            "same_results": v1 == v2 == v3}
