"""Several examples judged at once, through the runner's shared executor: every run of a batch
goes to one ``run_scenarios`` (the frameworks' worker processes under ``--jobs``, or Ray tasks
under ``--executor ray``), so the workers go on to the next example's runs while the reference
computes; then each result is judged alone (``oracle.verdict``). The outcomes are the same as one
example at a time (``oracle.judge_example``): a run is a function of its plan, whatever computes it.

A batch holds at most ``BATCH`` examples and, together, no more than the memory budget
(``--max-memory``, default the machine's memory; ``harness.run.budget``): the harness keeps every
run of a batch until it is judged; and a framework worker grown past an eighth of it is started
afresh (``recycle_workers``). Besides the outcome, each example yields the two scores the
guided phase targets (``Judged``)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from harness.errors import BadInput
from harness.fuzz.fingerprint import UNKNOWN, Fingerprint
from harness.fuzz.oracle import EXPLAINED, FINDING, NOT_RUNNABLE, Outcome, verdict
from harness.fuzz.space import Example
from harness.judge.result import ScenarioResult
from harness.pipeline import Prepared, prepare, run_scenarios
from harness.run.adapters.workers import resident_bytes, stop
from harness.run.budget import estimate, machine_memory

BATCH = 8
WORKER_SHARE = 0.125  # of the memory budget, per framework worker (recycle_workers)


@dataclass(frozen=True)
class Judged:
    """An example's outcome, and what guides the search towards findings: ``worst``, the largest
    fraction of its tolerance a pair not explained used at any step (> 1: disagrees); ``diverged_at``,
    the latest first divergent step of those pairs (None when none diverges)."""

    outcome: Outcome
    worst: float = 0.0
    diverged_at: int | None = None


def _harness_fault(where: str, exc: Exception) -> Judged:
    return Judged(Outcome(FINDING, frozenset({Fingerprint("harness", where, type(exc).__name__, "-", UNKNOWN)})))


def _scored(result: ScenarioResult) -> Judged:
    try:
        outcome = verdict(result)
    except Exception as exc:  # a fault of the harness is a finding, never the end of a campaign
        return _harness_fault("diagnosis", exc)
    if outcome.kind == EXPLAINED:  # a property of the frameworks, confirmed: it guides nowhere either
        return Judged(outcome)
    open_pairs = [c for c in result.comparisons if not c.explained]  # an explained difference guides nowhere
    used = [c.closest[2] for c in open_pairs if c.closest is not None and math.isfinite(c.closest[2])]
    diverged = [c.first_divergent_step for c in open_pairs if c.first_divergent_step is not None]
    return Judged(outcome, worst=max(used, default=0.0), diverged_at=max(diverged, default=None))


def _prepared(example: Example, *, frameworks: tuple[str, ...], dtypes: tuple[str, ...],
              max_bytes: int) -> Prepared | Judged:
    try:
        return prepare(example.scenario(), frameworks=frameworks, dtypes=dtypes, max_bytes=max_bytes)
    except BadInput as exc:
        return Judged(Outcome(NOT_RUNNABLE, reason=exc.expected))
    except Exception as exc:
        return _harness_fault("run", exc)


def judge_all(examples: list[Example], *, frameworks: tuple[str, ...], dtypes: tuple[str, ...],
              max_bytes: int | None = None) -> list[Judged]:
    """Every example's ``Judged``, in order (module docstring)."""
    limit = machine_memory() if max_bytes is None else max_bytes
    out: list[Judged | None] = [None] * len(examples)
    batch: list[tuple[int, Prepared]] = []
    held = 0.0
    for i, example in enumerate(examples):
        p = _prepared(example, frameworks=frameworks, dtypes=dtypes, max_bytes=limit)
        if isinstance(p, Judged):
            out[i] = p
            continue
        need = estimate(p.result.scenario, runs_per_dtype=len(p.result.frameworks), dtypes=dtypes).total
        if batch and (len(batch) >= BATCH or held + need > limit):
            _run(batch, examples, out, frameworks=frameworks, dtypes=dtypes, limit=limit)
            batch, held = [], 0.0
        batch.append((i, p))
        held += need
    if batch:
        _run(batch, examples, out, frameworks=frameworks, dtypes=dtypes, limit=limit)
    recycle_workers(limit)
    return [j for j in out if j is not None]


def recycle_workers(limit: int) -> None:
    """A framework's worker keeps what its framework caches run after run (Keras on TensorFlow
    grows by ~6 MB per fuzzed scenario: its traced functions); one that holds more than
    ``WORKER_SHARE`` of the memory budget is ended, and the next run starts a fresh one (the runs
    are the same: a run is a function of its plan). Ray's workers are Ray's to manage."""
    for name, held in resident_bytes().items():
        if held > limit * WORKER_SHARE:
            stop(name)


def _run(batch: list[tuple[int, Prepared]], examples: list[Example], out: list[Judged | None], *,
         frameworks: tuple[str, ...], dtypes: tuple[str, ...], limit: int) -> None:
    try:
        results = run_scenarios([p for _, p in batch])
    except Exception:  # some example's fault: made again one at a time, so that it is named by its own
        for i, _ in batch:
            p = _prepared(examples[i], frameworks=frameworks, dtypes=dtypes, max_bytes=limit)
            if isinstance(p, Judged):
                out[i] = p
                continue
            try:
                [result] = run_scenarios([p])
            except Exception as exc:
                out[i] = _harness_fault("run", exc)
                continue
            out[i] = _scored(result)
        return
    for (i, _), result in zip(batch, results):
        out[i] = _scored(result)
