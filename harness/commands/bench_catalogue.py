"""The catalogue timed through its reports' work (``nn-parity bench --catalogue``).

``time_catalogue`` times every catalogue scenario through its report's work (every run, the
control runs and the diagnoses' traced steps, and its files made, figures included, not written:
what ``nn-parity report`` does) for each catalogue asked (the
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

from harness.judge.diagnosis import Diagnosis
from harness.judge.result import ScenarioResult
from harness.pipeline import prepare, report_scenarios
from harness.render.file_set import scenario_files
from harness.run.adapters import use_jobs
from harness.run.adapters.workers import stop_all
from harness.run.cache import use_cache
from harness.run.resident import PeakResident
from harness.spec.scenario import Scenario

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
                made = report_scenarios([prepare(s, frameworks=frameworks) for s in scenarios], _files)
            out[catalogue] = (time.perf_counter() - start, verdicts([r for r, _ in made], [f for _, f in made]))
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


def _files(result: ScenarioResult, found: list[Diagnosis] | Exception) -> list[Diagnosis]:
    """A result's diagnoses, its report's files made (not written), as ``report`` makes them; the
    harness error its diagnosis raised, raised (as ``diagnose`` does)."""
    if isinstance(found, Exception):
        raise found
    scenario_files(result, found)
    return found


def differences(passes: dict[str, Verdicts]) -> list[dict[str, Any]]:
    """Each scenario whose verdicts differ between the passes: its name and each pass's verdict."""
    return [{"scenario": found[0][0], **{name: repr(v[1:]) for name, v in zip(passes, found)}}
            for found in zip(*passes.values()) if len(set(found)) > 1]


def _passes(serial: float, parallel: float, cached: float, same: bool) -> dict[str, Any]:
    return {"serial_seconds": serial, "parallel_seconds": parallel, "cached_seconds": cached,
            "parallel_ratio": parallel / serial, "cached_ratio": cached / serial, "same_results": same}
