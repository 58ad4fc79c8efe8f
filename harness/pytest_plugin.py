"""A pytest plugin: scenario ``.toml`` files collected as tests (``docs/python-api.md``).

Registered on install (entry point ``nn_parity`` in the ``pytest11`` group). It collects
nothing unless asked::

    pytest --parity scenarios/ --parity extra/my-scenario.toml
    # or, in pytest.ini / pyproject.toml's [tool.pytest.ini_options]:  parity_paths = ["scenarios"]

A folder gives the ``*.toml`` files directly in it (like the catalogue: not its subfolders, where
answer keys live); a file is taken as named. Each scenario (each ``[[variants]]`` entry) gives
one item per compared pair and dtype, ``my-scenario[keras-torch-float64]``, and, when it prints
lab values, ``my-scenario[lab-values]``. A scenario runs once per session, when its first item
runs; its result is dropped after its last item. A failing item reports the harness's own text
(``harness.testing.failure_text``); a pair that differs only by an explained optimizer convention
passes and says so (``PASSED (differ, explained: ...)`` and a ``parity`` section under ``-rA``); a
framework that is not installed skips its items; a crashed run fails the items that need it.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from harness.commands.args import frameworks_arg
from harness.errors import BadInput
from harness.judge.compare import ACCOUNTED
from harness.judge.diagnosis import Diagnosis
from harness.judge.result import ScenarioResult
from harness.pipeline import run_scenario
from harness.run.adapters import FRAMEWORKS, REFERENCE
from harness.run.labels import framework_of
from harness.run.runner import check_runnable, planned_pairs
from harness.run.trajectory import CRASHED
from harness.spec.scenario import DTYPES, Scenario, load_scenarios
from harness.testing import diagnoses, failure_text, lab_check_text, run_problem

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr

LAB_VALUES = "lab-values"
VERDICT = "parity verdict"  # the user_properties key of an explained convention difference


class ParityFailure(Exception):
    """A parity item failed: its message is the whole report."""


class _State:
    """Per session: the parity roots and options, and the scenario results (run lazily)."""

    def __init__(self, *, files: set[Path], folders: set[Path], frameworks: tuple[str, ...],
                 dtypes: tuple[str, ...]) -> None:
        self.files, self.folders = files, folders
        self.frameworks, self.dtypes = frameworks, dtypes
        self.results: dict[tuple[Path, str], ScenarioResult] = {}
        self.diagnoses: dict[tuple[Path, str], list[Diagnosis]] = {}
        self.pending: dict[tuple[Path, str], int] = {}  # items still to run, per scenario

    def wants(self, path: Path) -> bool:
        path = path.resolve()
        return path in self.files or (path.parent in self.folders and path.suffix == ".toml"
                                      and path.name != "pyproject.toml")

    def result(self, key: tuple[Path, str], scenario: Scenario) -> ScenarioResult:
        if key not in self.results:
            self.results[key] = run_scenario(scenario, frameworks=self.frameworks, dtypes=self.dtypes)
        return self.results[key]

    def diagnosed(self, key: tuple[Path, str]) -> list[Diagnosis]:
        if key not in self.diagnoses:
            self.diagnoses[key] = diagnoses(self.results[key])
        return self.diagnoses[key]

    def done(self, key: tuple[Path, str]) -> None:
        self.pending[key] = self.pending.get(key, 1) - 1
        if self.pending[key] <= 0:
            self.results.pop(key, None)
            self.diagnoses.pop(key, None)


_STATE = pytest.StashKey[_State]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nn-parity", "nn-parity scenarios as tests")
    group.addoption("--parity", action="append", default=[], metavar="PATH",
                    help="collect the scenario .toml files in this folder (not its subfolders), or this "
                         "scenario file, as tests (repeatable)")
    group.addoption("--parity-frameworks", default=",".join(FRAMEWORKS), metavar="LIST",
                    help=f"frameworks the parity scenarios run in: a comma-separated list, keras@jax and "
                         f"keras@torch included, or all (default {','.join(FRAMEWORKS)})")
    group.addoption("--parity-dtypes", default=",".join(DTYPES), metavar="LIST",
                    help=f"dtypes the parity scenarios run in (default {','.join(DTYPES)})")
    parser.addini("parity_paths", type="paths", default=[],
                  help="scenario folders or files collected as tests, as with --parity (relative to the ini file)")


def _choices(config: pytest.Config, option: str, known: tuple[str, ...]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(v.strip() for v in str(config.getoption(option)).split(",") if v.strip()))
    unknown = [v for v in chosen if v not in known]
    if unknown or not chosen:
        raise pytest.UsageError(f"--{option.replace('_', '-')}: expected a comma-separated list of {list(known)}; "
                                f"received {config.getoption(option)!r}")
    return chosen


def pytest_configure(config: pytest.Config) -> None:
    here = config.invocation_params.dir
    roots = [here / p for p in config.getoption("parity")] + list(config.getini("parity_paths"))
    if not roots:
        return
    files, folders = set(), set()
    for root in roots:
        if root.is_dir():
            folders.add(root.resolve())
        elif root.is_file() and root.suffix == ".toml":
            files.add(root.resolve())
        else:
            raise pytest.UsageError(f"--parity / parity_paths: {root}: expected a folder or a scenario .toml file")
    try:
        frameworks = frameworks_arg(str(config.getoption("parity_frameworks")))
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"--parity-frameworks: {exc}") from None
    dtypes = _choices(config, "parity_dtypes", DTYPES)
    config.stash[_STATE] = _State(files=files, folders=folders, frameworks=frameworks, dtypes=dtypes)
    for root in roots:  # collected besides the command line's paths (pytest drops overlaps)
        if str(root) not in config.args:
            config.args.append(str(root))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    state = parent.config.stash.get(_STATE, None)
    if state is None or not state.wants(file_path):
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Count each scenario's selected items, so its result is dropped after the last one."""
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    state.pending.clear()
    for item in items:
        if isinstance(item, ParityItem):
            state.pending[item.key] = state.pending.get(item.key, 0) + 1


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, Any] | None:  # noqa: ARG001 - the hook's signature
    """``PASSED (differ, explained: Adam epsilon placement ...)`` for an explained convention difference."""
    if report.when == "call" and report.passed:
        for key, value in report.user_properties:
            if key == VERDICT:
                return "passed", ".", (f"PASSED ({value})", {"green": True})
    return None


class ScenarioFile(pytest.File):
    """A scenario file: one item per scenario (variant), compared pair and dtype."""

    def collect(self) -> Iterator[pytest.Item]:
        state = self.config.stash[_STATE]
        try:
            scenarios = load_scenarios(self.path)
            for scenario in scenarios:
                check_runnable(scenario, frameworks=state.frameworks, dtypes=state.dtypes)
        except BadInput as exc:
            raise self.CollectError(exc.one_line()) from None
        for scenario in scenarios:
            pairs = planned_pairs(scenario, state.frameworks)
            for dtype in state.dtypes:
                for a, b in pairs:
                    yield ParityItem.from_parent(self, name=f"{scenario.name}[{a}-{b}-{dtype}]",
                                                 scenario=scenario, pair=(a, b), dtype=dtype)
            if REFERENCE in state.frameworks and any(lab.dtype in state.dtypes for lab in scenario.lab_values):
                yield ParityItem.from_parent(self, name=f"{scenario.name}[{LAB_VALUES}]",
                                             scenario=scenario, pair=None, dtype=None)


class ParityItem(pytest.Item):
    """One compared pair in one dtype (``pair`` and ``dtype``), or (both None) the scenario's
    printed lab values against the reference."""

    def __init__(self, *, scenario: Scenario, pair: tuple[str, str] | None, dtype: str | None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario, self.pair, self.dtype = scenario, pair, dtype
        self.key = (self.path, scenario.name)

    def runtest(self) -> None:
        state = self.config.stash[_STATE]
        result = state.result(self.key, self.scenario)
        if self.pair is None or self.dtype is None:
            self._check_lab_values(result)
            return
        a, b = self.pair
        problems = [p for p in (run_problem(result, label, dtype)
                                for label in (a, b) for dtype in (self.dtype,)) if p is not None]
        crashed = [text for status, text in problems if status == CRASHED]
        if crashed:
            raise ParityFailure("\n".join(crashed))
        if problems:
            pytest.skip("; ".join(text for _, text in problems))
        c = result.comparison(a, b, self.dtype)
        if c is None:
            raise ParityFailure(f"{self.scenario.name}: {a} vs {b} ({self.dtype}) was not compared")
        if not c.ok:
            raise ParityFailure(failure_text(result, c, state.diagnosed(self.key)))
        if not c.agree:  # differs only by what the reference accounts for
            self.user_properties.append((VERDICT, c.verdict))
            self.add_report_section("call", "parity", f"{self.scenario.name}: {c.pair} ({c.dtype}): {c.verdict}; "
                                    f"max |diff| {c.max_abs:.3e}, {ACCOUNTED}")

    def _check_lab_values(self, result: ScenarioResult) -> None:
        reference = [label for label in result.frameworks if framework_of(label) == REFERENCE]
        problems = [p for p in (run_problem(result, label, dtype) for label in reference for dtype in result.dtypes)
                    if p is not None and p[0] == CRASHED]
        failing = [lab_check_text(self.scenario.name, c) for c in result.lab_checks if not c.ok]
        if problems or failing:
            raise ParityFailure("\n".join([text for _, text in problems] + failing))
        if not result.lab_checks:  # collected only when a lab value's dtype runs: never pass on nothing
            raise ParityFailure(f"{self.scenario.name}: no printed lab value was checked against the reference")

    def teardown(self) -> None:
        state = self.config.stash.get(_STATE, None)
        if state is not None:
            state.done(self.key)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | TerminalRepr:
        if isinstance(excinfo.value, ParityFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name
