"""The one orchestrator: a scenario checked and planned, its runs made, judged, its control runs made
and its pairs explained, in that order; and a result's disagreements diagnosed, with the control
runs the diagnosis asks for made through the same run floor (``RUNS``).

Every other module sits on one floor (``spec`` -> ``run`` -> ``judge`` -> ``render`` -> ``answers``
-> ``commands``, docs/architecture.md); this one is where the run floor and the judge meet: the
judge asks for runs through the ``harness.judge.runs.Runs`` it is given, and ``RUNS`` is the one
that makes them through the adapters, their worker processes and the run cache.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Mapping, TypeAlias

from harness.judge import diagnosis
from harness.judge.compare_runs import compare_pair, controls_needed, judge_runs
from harness.judge.diagnosis import Diagnosis
from harness.judge.explain import explain
from harness.judge.plan_checks import plan_faults
from harness.judge.result import ScenarioResult
from harness.run.adapters import ALL_FRAMEWORKS, FRAMEWORKS, Adapter, Params, adapter, run_framework, trace_framework
from harness.run.adapters import jobs as running_at_once
from harness.run.adapters.workers import stop_all
from harness.run.labels import control_label
from harness.run.plan import TrainingPlan, make_plan, side_plan
from harness.run.progress import Progress
from harness.run.runner import check_runnable, implementations, make_runs
from harness.run.trajectory import Trajectory
from harness.spec.scenario import DTYPES, Scenario


class AdapterRuns:
    """``harness.judge.runs.Runs`` through the adapters: their worker processes and the run cache."""

    @property
    def frameworks(self) -> tuple[str, ...]:
        return ALL_FRAMEWORKS

    def adapter(self, framework: str) -> Adapter:
        return adapter(framework)

    def run(self, framework: str, plan: TrainingPlan) -> Trajectory:
        return run_framework(framework, plan)

    def trace(self, framework: str, plan: TrainingPlan, step: int) -> Params:
        return trace_framework(framework, plan, step)

    def check_runnable(self, scenario: Scenario, *, frameworks: tuple[str, ...], dtypes: tuple[str, ...]) -> None:
        check_runnable(scenario, frameworks=frameworks, dtypes=dtypes)


RUNS = AdapterRuns()


def run_scenario(
    scenario: Scenario,
    *,
    frameworks: tuple[str, ...] = FRAMEWORKS,
    dtypes: tuple[str, ...] = DTYPES,
    progress: Progress | None = None,
    sides: Mapping[str, Scenario] | None = None,
    max_bytes: int | None = None,
) -> ScenarioResult:
    """``sides`` runs one implementation on a variant of the scenario (e.g. made with
    ``dataclasses.replace``) with the same data, initial weights and batch order. A scenario
    whose runs would need more than ``max_bytes`` (default: the machine's memory) is refused
    before anything is allocated (``harness.run.budget``)."""
    [result] = run_scenarios([prepare(scenario, frameworks=frameworks, dtypes=dtypes, sides=sides,
                                      max_bytes=max_bytes)], progress=progress)
    return result


@dataclass
class Prepared:
    """A scenario checked and planned, its runs not made yet (``prepare``)."""

    result: ScenarioResult
    native: set[str]  # the implementations in their native convention (not a caller's variant)

    @property
    def cells(self) -> list[tuple[str, str]]:
        return [(label, dtype) for dtype in self.result.dtypes for label in self.result.frameworks]


def prepare(scenario: Scenario, *, frameworks: tuple[str, ...] = FRAMEWORKS, dtypes: tuple[str, ...] = DTYPES,
            sides: Mapping[str, Scenario] | None = None, max_bytes: int | None = None) -> Prepared:
    """Check that the scenario can run (``check_runnable``: ``BadInput`` otherwise) and make its plans."""
    planned = implementations(scenario, frameworks)
    result = ScenarioResult(scenario=scenario, frameworks=tuple(planned), dtypes=dtypes,
                            sides={**{k: v for k, v in planned.items() if v is not scenario}, **dict(sides or {})})
    check_runnable(scenario, frameworks=frameworks, dtypes=dtypes, max_bytes=max_bytes, sides=result.sides)
    for dtype in dtypes:
        result.plans[dtype] = make_plan(scenario, dtype)
        result.plan_faults += plan_faults(result.plans[dtype])
    return Prepared(result, native=set(planned) - set(sides or {}))


def run_scenarios(prepared: list[Prepared], *, progress: Progress | None = None) -> list[ScenarioResult]:
    """Every run of every prepared scenario in one ``run_all``: the frameworks' workers go on to
    the next scenario's runs while the reference computes (no wait between scenarios); then each
    scenario's runs are judged (``judge_runs``); then the control runs those runs call for
    (``controls_needed``) are made, again all in one ``run_all``, and compared with the reference;
    then the pairs are explained (``explain``). The results are the same as one scenario at a time."""
    cells = [(p, label, dtype, p.result.scenario_for(label)) for p in prepared for label, dtype in p.cells]
    for (p, label, dtype, _), run in zip(cells, _make(cells, progress)):
        p.result.runs[(label, dtype)] = run
    for p in prepared:
        judge_runs(p.result, RUNS)
    needed = [(p, label, dtype, reference) for p in prepared
              for label, dtype, reference in controls_needed(p.result, RUNS)]
    controls = []
    for p, label, dtype, _ in needed:
        p.result.sides[control_label(label)] = replace(p.result.scenario_for(label), keep_64_bit=True)
        controls.append((p, control_label(label), dtype, p.result.sides[control_label(label)]))
    for (p, control, dtype, _), (_, _, _, reference), run in zip(controls, needed, _make(controls, progress)):
        p.result.runs[(control, dtype)] = run
        if run.ok and p.result.runs[(reference, dtype)].ok:
            p.result.comparisons.append(compare_pair(p.result, reference, control, dtype, RUNS))
    for p in prepared:
        for dtype in p.result.dtypes:
            explain(p.result, dtype, native=p.native, runs=RUNS)
    return [p.result for p in prepared]


def _make(cells: list[tuple[Prepared, str, str, Scenario]], progress: Progress | None) -> list[Trajectory]:
    """Each cell's run: ``label`` running ``scenario`` on its scenario's plan for ``dtype``."""
    return make_runs([(p.result.scenario.name, label, side_plan(p.result.plans[dtype], scenario))
                      for p, label, dtype, scenario in cells], progress)


def diagnose(result: ScenarioResult, *, progress: Progress | None = None) -> list[Diagnosis]:
    """``harness.judge.diagnosis.diagnose`` with its traces and control runs made through ``RUNS``."""
    return diagnosis.diagnose(result, runs=RUNS, progress=progress)


_Made: TypeAlias = "list[Diagnosis] | Exception"


def diagnose_all(results: list[ScenarioResult], *,
                 progress: Progress | None = None) -> Iterator[list[Diagnosis] | Exception]:
    """Each result's diagnoses (``diagnose``), in the order of ``results``, each as soon as it and
    those before it are made (a report can be written meanwhile), up to ``jobs()`` results at once:
    a thread each, whose traces and control runs go to the workers (each serves one call at a
    time) and to the reference in the thread; a diagnosis is a function of its result and its runs
    only, so the order they are made in changes nothing. A harness error in one result's diagnosis
    is given in its place; the others go on."""
    def one(result: ScenarioResult) -> list[Diagnosis] | Exception:
        try:
            return diagnose(result, progress=progress)
        except Exception as exc:  # the caller's to report, scenario by scenario
            return exc

    if running_at_once() <= 1 or len(results) <= 1:
        yield from (one(r) for r in results)
        return
    try:
        yield from _in_order_on_daemon_threads(one, results, at_once=running_at_once())
    except BaseException:  # Ctrl-C, SIGTERM, or left unfinished: nothing more starts; ending the workers makes
        stop_all()          # the threads' calls into them return at once, and no exit waits for a thread
        raise


def _in_order_on_daemon_threads(one: Callable[[ScenarioResult], _Made], results: list[ScenarioResult], *,
                                at_once: int) -> Iterator[_Made]:
    """``one`` of each result, in order, at most ``at_once`` running at a time, each on a daemon thread: an
    interrupted caller exits without waiting for a diagnosis still running (a pool's threads are joined
    at exit). When the caller stops asking (an interrupt, an error), nothing more is started."""
    made: list[queue.Queue[_Made]] = [queue.Queue(maxsize=1) for _ in results]
    slots = threading.BoundedSemaphore(at_once)
    stopped = threading.Event()

    def work(index: int) -> None:
        try:
            made[index].put(one(results[index]))
        finally:
            slots.release()

    def start_each() -> None:
        for index in range(len(results)):
            slots.acquire()
            if stopped.is_set():
                return
            threading.Thread(target=work, args=(index,), name="nn-parity-diagnose", daemon=True).start()

    threading.Thread(target=start_each, name="nn-parity-diagnose-start", daemon=True).start()
    try:
        for box in made:
            yield box.get()
    finally:
        stopped.set()
