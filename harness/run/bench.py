"""Timing of the adapters (``nn-parity bench``).

Each adapter is run once untimed (imports, graph tracing), then ``repeat``
times; the best wall time is kept, so ratios compare steady-state speed, and so is the best CPU
time (``time.process_time`` in the process that ran it: the harness's for the reference, the
worker's for a framework), whose ratios the machine's load moves far less than wall times.
The ``model.fit`` baseline is the naive loop the labs use (Keras only). The hand-written NumPy loop
(``harness.run.hand_loop``, where it is defined) is the reference's own baseline: the same maths,
written as a plain loop, timed in turn with the reference.

``time_catalogue`` times every catalogue scenario through its report's work (every run, the
control runs and the diagnoses' traced steps; not the rendering) for each catalogue asked (the
default frameworks', and e.g. ``--frameworks all``'s, ``reports/backends``), three ways in one
command: one run at a time from a cold cache, with ``jobs`` implementations computing at once
from another cold cache, and again from the cache the second pass filled. Within a pass the
catalogues share the pass's cache, one after the other, as ``make report`` makes them, and each
catalogue starts fresh workers (each pays the frameworks' imports once), as a command of its own
does. The peak resident memory of the process and its workers is sampled meanwhile.
"""
from __future__ import annotations

import tempfile
import time
from typing import Any, Callable

from harness.judge.diagnosis import diagnose
from harness.run.adapters import REFERENCE, adapter, use_jobs
from harness.run.adapters.workers import RemoteAdapter, cpu_seconds, stop_all
from harness.run.cache import use_cache
from harness.run.hand_loop import hand_loop, not_defined
from harness.run.plan import TrainingPlan, make_plan
from harness.run.resident import PeakResident
from harness.run.runner import ScenarioResult, prepare, run_scenarios
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


Verdicts = list[tuple[Any, ...]]


def verdicts(results: list[ScenarioResult], diagnoses: list[list[Any]]) -> Verdicts:
    """What a report says of each scenario: whether it passes, its state, each pair's state and
    each diagnosis's kind and named cause (equal across passes when the passes agree)."""
    return [(r.scenario.name, r.ok, r.state, tuple((c.a, c.b, c.dtype, c.state) for c in r.comparisons),
             tuple((d.kind, d.comparison.a, d.comparison.b, d.comparison.dtype, d.cause_name) for d in found))
            for r, found in zip(results, diagnoses)]


def time_catalogue(scenarios: list[Scenario], *, catalogues: dict[str, tuple[str, ...]], jobs: int,
                   progress: Callable[[str], None]) -> dict[str, Any]:
    """For each catalogue (name -> its frameworks): ``serial_seconds``, ``parallel_seconds`` and
    ``cached_seconds`` of making its reports' runs and diagnoses, their ratios, and whether the
    three passes gave the same verdicts (``same_results``; ``differences``: the scenarios whose
    verdicts differ, each pass's); the same figures summed over the
    catalogues at the top level; the peak resident memory of this process and its workers
    (``peak_resident_bytes``, sampled; ``largest_process_bytes``, the kernel's peak of the largest
    one; None off Linux)."""
    def one_pass(name: str, parallel: int, cache: str) -> dict[str, tuple[float, Verdicts]]:
        out = {}
        for catalogue, frameworks in catalogues.items():
            memory.sample()  # the workers' own peaks, read before they end
            stop_all()  # fresh workers: every catalogue pays the frameworks' imports, as a command does
            start = time.perf_counter()
            with use_cache(cache), use_jobs(parallel):  # all the runs at once, as `nn-parity report` makes them
                results = run_scenarios([prepare(s, frameworks=frameworks) for s in scenarios])
                found = [diagnose(r) for r in results]
            out[catalogue] = (time.perf_counter() - start, verdicts(results, found))
            progress(f"{catalogue} catalogue, {name} ({len(scenarios)} scenarios): {out[catalogue][0]:.1f} s")
        return out

    with PeakResident() as memory, tempfile.TemporaryDirectory(prefix="nn-parity-bench-cache-") as cold, \
            tempfile.TemporaryDirectory(prefix="nn-parity-bench-cache-") as folder:
        serial = one_pass("one run at a time, cold cache", 1, cold)
        parallel = one_pass(f"--jobs {jobs}, cold cache", jobs, folder)
        cached = one_pass("from the cache", jobs, folder)
        memory.sample()
        stop_all()
    figures: dict[str, Any] = {"scenarios": len(scenarios), "jobs": jobs, "catalogues": {}}
    for catalogue, frameworks in catalogues.items():
        passes = {"serial": serial[catalogue][1], "parallel": parallel[catalogue][1], "cached": cached[catalogue][1]}
        figures["catalogues"][catalogue] = {"frameworks": list(frameworks), **_passes(
            serial[catalogue][0], parallel[catalogue][0], cached[catalogue][0],
            passes["serial"] == passes["parallel"] == passes["cached"]), "differences": differences(passes)}
    per = figures["catalogues"].values()
    figures.update(_passes(sum(c["serial_seconds"] for c in per), sum(c["parallel_seconds"] for c in per),
                           sum(c["cached_seconds"] for c in per), all(c["same_results"] for c in per)))
    figures.update(peak_resident_bytes=memory.peak_total, largest_process_bytes=memory.largest_process)
    return figures


def differences(passes: dict[str, Verdicts]) -> list[dict[str, Any]]:
    """Each scenario whose verdicts differ between the passes: its name and each pass's verdict."""
    return [{"scenario": found[0][0], **{name: repr(v[1:]) for name, v in zip(passes, found)}}
            for found in zip(*passes.values()) if len(set(found)) > 1]


def _passes(serial: float, parallel: float, cached: float, same: bool) -> dict[str, Any]:
    return {"serial_seconds": serial, "parallel_seconds": parallel, "cached_seconds": cached,
            "parallel_ratio": parallel / serial, "cached_ratio": cached / serial, "same_results": same}
