"""The one orchestrator: a scenario checked and planned, its runs made, judged, its control runs made
and its pairs explained, in that order; and a result's disagreements diagnosed, with the control
runs the diagnosis asks for made through the same run floor (``RUNS``).

Every other module sits on one floor (``spec`` -> ``run`` -> ``judge`` -> ``render`` -> ``answers``
-> ``commands``, docs/architecture.md); this one is where the run floor and the judge meet: the
judge asks for runs through the ``harness.judge.runs.Runs`` it is given, and ``RUNS`` is the one
that makes them through the adapters, their worker processes and the run cache.
"""
from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Mapping, TypeAlias, TypeVar, cast

from harness.judge import diagnosis
from harness.judge.compare_runs import compare_pair, controls_needed, judge_runs
from harness.judge.diagnosis import Diagnosis
from harness.judge.explain import explain
from harness.judge.plan_checks import plan_faults
from harness.judge.result import ScenarioResult
from harness.run.adapters import ALL_FRAMEWORKS, FRAMEWORKS, Adapter, Params, adapter, run_framework, trace_framework
from harness.run.adapters import jobs as running_at_once
from harness.run.adapters.schedule import cost
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
_SLICE = 0.2  # seconds: the longest the calling thread waits before it handles a pending signal


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
    needed = [control for p in prepared for control in _controls(p)]
    for (control, reference), run in zip(needed, _make([cell for cell, _ in needed], progress)):
        _compare_control(control, reference, run)
    for p in prepared:
        _explain(p)
    return [p.result for p in prepared]


_Cell: TypeAlias = "tuple[Prepared, str, str, Scenario]"  # (scenario, implementation label, dtype, what it runs)


def _controls(p: Prepared) -> list[tuple[_Cell, str]]:
    """The control runs ``p``'s judged runs call for (``controls_needed``), each a cell (its side
    added to the result's) and the label of the reference it is compared with."""
    out = []
    for label, dtype, reference in controls_needed(p.result, RUNS):
        p.result.sides[control_label(label)] = replace(p.result.scenario_for(label), keep_64_bit=True)
        out.append(((p, control_label(label), dtype, p.result.sides[control_label(label)]), reference))
    return out


def _compare_control(cell: _Cell, reference: str, run: Trajectory) -> None:
    p, control, dtype, _ = cell
    p.result.runs[(control, dtype)] = run
    if run.ok and p.result.runs[(reference, dtype)].ok:
        p.result.comparisons.append(compare_pair(p.result, reference, control, dtype, RUNS))


def _explain(p: Prepared) -> None:
    for dtype in p.result.dtypes:
        explain(p.result, dtype, native=p.native, runs=RUNS)


def _make(cells: list[_Cell], progress: Progress | None, *, parallel: int | None = None,
          each: Callable[[int, Trajectory], None] | None = None) -> list[Trajectory]:
    """Each cell's run: ``label`` running ``scenario`` on its scenario's plan for ``dtype`` (``make_runs``)."""
    return make_runs([(p.result.scenario.name, label, side_plan(p.result.plans[dtype], scenario))
                      for p, label, dtype, scenario in cells], progress, parallel=parallel, each=each)


_Then = TypeVar("_Then")


def report_scenarios(prepared: list[Prepared], then: Callable[[ScenarioResult, list[Diagnosis] | Exception], _Then],
                     *, progress: Progress | None = None) -> list[tuple[ScenarioResult, _Then]]:
    """Each prepared scenario's result (``run_scenarios``), its diagnoses (``diagnose``; a harness error
    in them is given in their place) and ``then(result, diagnoses)`` (e.g. its report's files), in the
    order of ``prepared``. With more than one job slot (``jobs()``), a scenario is taken up as soon as
    its own runs are made, while the slots make the other scenarios' runs: on up to ``jobs()`` daemon
    threads its runs are judged, its control runs made and compared, its pairs explained, its
    diagnoses and ``then`` made (the harness's own work, which came after every run, overlaps the
    frameworks'). A scenario's result is a function of its own runs, so each is the same as
    ``run_scenarios`` then ``diagnose_all`` give; a harness error in judging or explaining one is raised
    once every run is made. An interrupt (Ctrl-C, SIGTERM) stops the threads taking up more."""
    if running_at_once() <= 1:
        results = run_scenarios(prepared, progress=progress)
        return [(result, then(result, found)) for result, found in
                zip(results, diagnose_all(results, progress=progress))]
    # the longest scenarios' runs first, the reference's too (as the slots take the workers' runs): their
    # reports, the longest to make, are made while the short runs are
    order = sorted(range(len(prepared)), key=lambda n: -max(map(cost, prepared[n].result.plans.values()), default=0))
    where = [(n, k) for n in order for k in range(len(prepared[n].cells))]  # each cell's scenario and place in it
    cells = [(prepared[n], *prepared[n].cells[k], prepared[n].result.scenario_for(prepared[n].cells[k][0]))
             for n, k in where]
    runs: list[list[Trajectory | None]] = [[None] * len(p.cells) for p in prepared]
    ready: queue.Queue[int | None] = queue.Queue()
    lock = threading.Lock()

    def each(i: int, run: Trajectory) -> None:  # a run made (or found in the cache): its scenario's last one?
        n, k = where[i]
        with lock:
            runs[n][k] = run
            if len(done := [r for r in runs[n] if r is not None]) == len(runs[n]):
                for (label, dtype), made_run in zip(prepared[n].cells, done):  # in the order of the cells, as
                    prepared[n].result.runs[(label, dtype)] = made_run  # run_scenarios (the report's tables)
                ready.put(n)

    made: list[queue.Queue[tuple[_Then, None] | tuple[None, BaseException]]] = [queue.Queue(maxsize=1)
                                                                                   for _ in prepared]
    stopped = threading.Event()

    def take_up() -> None:
        while not stopped.is_set() and (n := ready.get()) is not None:
            try:
                made[n].put((_judged_and_diagnosed(prepared[n], then, progress), None))
            except BaseException as exc:  # a harness error: raised by the caller's thread
                made[n].put((None, exc))

    threads = [threading.Thread(target=take_up, name="nn-parity-report", daemon=True)
               for _ in range(min(running_at_once(), len(prepared)))]
    for thread in threads:
        thread.start()
    for n, p in enumerate(prepared):
        if not p.cells:  # no run to wait for (each would never take it up)
            ready.put(n)
    try:
        _make(cells, progress, each=each)
        for _ in threads:
            ready.put(None)
        out = []
        for p, box in zip(prepared, made):
            while True:  # in slices: a pending signal is handled meanwhile
                with contextlib.suppress(queue.Empty):
                    value, error = box.get(timeout=_SLICE)
                    break
            if error is not None:
                raise error
            out.append((p.result, cast(_Then, value)))
        return out
    except BaseException:  # Ctrl-C, SIGTERM or a harness error: ending the workers makes the threads' calls
        stop_all()          # into them return at once, and no exit waits for a thread
        raise
    finally:  # nothing more is taken up
        stopped.set()
        for _ in threads:
            ready.put(None)


def _judged_and_diagnosed(p: Prepared, then: Callable[[ScenarioResult, list[Diagnosis] | Exception], _Then],
                          progress: Progress | None) -> _Then:
    """One scenario whose runs are made: judged, its control runs made (one at a time: the job slots
    are the caller's) and compared, explained, diagnosed, and ``then`` of it."""
    judge_runs(p.result, RUNS)
    needed = _controls(p)
    for (control, reference), run in zip(needed, _make([cell for cell, _ in needed], progress, parallel=1)):
        _compare_control(control, reference, run)
    _explain(p)
    try:
        found: list[Diagnosis] | Exception = diagnose(p.result, progress=progress)
    except Exception as exc:  # the caller's to report, scenario by scenario
        found = exc
    return then(p.result, found)


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
