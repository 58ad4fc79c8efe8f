"""Shared fixtures.

``catalogue_result``: a catalogue scenario run in every implementation and dtype, once per
session. Tests ask for it by name with indirect parametrization::

    @pytest.mark.parametrize("catalogue_result", ["xor-perceptron"], indirect=True, scope="session")
    def test_something(catalogue_result): ...

Parametrize with ``scope="session"`` (else pytest scopes the value to the test). The tests
that use it run last, grouped by scenario, so that each scenario runs exactly once and only
one result is held in memory at a time; they are marked ``slow`` (``make test-fast`` leaves
them out). Under pytest-xdist (``make test``: ``-n auto --dist loadgroup``) the tests of one
scenario form one ``xdist_group``: they all go to one worker, so the scenario still runs once;
so do the tests that share a module-scoped fixture (``_group``).

``shared_runs``: the test's runs kept in a run cache of its own, so that the fuzzer's oracle, asked
after ``run_scenario`` about the same example, is served the runs instead of making them again.

``frameworks_in_process``: keras and torch run in the test's process instead of their workers
(``harness.run.adapters.workers.inline``), so a monkeypatched framework class takes effect.

``gone``: waits for a process to end (a killed submission's children end with it);
``still_running``: whether processes keep running for a while.

``rng``: a NumPy generator seeded from the test's own id, so a test draws the same numbers
whatever ran before it.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from _pytest.nodeid import NodeId

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# A pycache prefix (``make test``: build/pycache) is the only place Python then reads compiled modules
# from, the installed packages' too: with PYTHONDONTWRITEBYTECODE also set nothing is ever kept there,
# and every process this session starts (framework workers, CLI subprocesses) would compile TensorFlow,
# torch and the rest from source again (measured: importing keras 11 s of CPU instead of 3.9 s). With a
# prefix, this process and its children write their compiled modules into it.
if sys.pycache_prefix and sys.dont_write_bytecode:
    sys.dont_write_bytecode = False
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
# The commands' run cache (harness.run.cache), for the tests that call them: one folder per
# session, removed at its end (never the repository's .nn-parity-cache/). Under pytest-xdist the
# workers share the controller's folder (they inherit its environment), so a run one worker made
# is not made again by the other: entries are written whole and renamed into place, safe for
# concurrent use; the controller removes the folder at its end.
_SESSION_CACHE = "NN_PARITY_TEST_SESSION_CACHE"
if "PYTEST_XDIST_WORKER" in os.environ and os.environ.get(_SESSION_CACHE):
    _CACHE = os.environ[_SESSION_CACHE]
else:
    _CACHE = tempfile.mkdtemp(prefix="nn-parity-test-cache-")
    os.environ[_SESSION_CACHE] = _CACHE
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ["NN_PARITY_CACHE"] = _CACHE

pytest_plugins = ["pytester"]  # tests/test_plugin.py runs pytest on scenario folders

from harness.judge.result import ScenarioResult  # noqa: E402
from harness.pipeline import run_scenario  # noqa: E402
from harness.run.adapters.workers import inline  # noqa: E402
from harness.run.cache import use_cache  # noqa: E402
from harness.spec.catalogue import resolve  # noqa: E402


@pytest.fixture(scope="session")
def catalogue_result(request: pytest.FixtureRequest) -> ScenarioResult:
    return run_scenario(resolve(request.param))


@pytest.fixture
def shared_runs(tmp_path: Path) -> Iterator[None]:
    """The runs and traced steps the test makes are kept in a run cache of its own
    (``harness.run.cache``) while it lasts: a test that runs a scenario and then asks the fuzzer's
    oracle (``judge_example``, which runs the same example again) is served the first call's runs,
    bitwise, instead of making them again, and the oracle still judges them whole. The cache is off
    under ``inline()`` (a monkeypatched framework); a test that monkeypatches anything does not use this."""
    with use_cache(tmp_path / "shared-runs"):
        yield


@pytest.fixture
def frameworks_in_process() -> Iterator[None]:
    """keras and torch run in the test's own process (not in their workers) while the test lasts:
    for tests that plant a defect by monkeypatching a framework class, which lives in one process."""
    with inline():
        yield


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie lingers where nothing reaps it, e.g. in a container)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.fixture
def gone() -> Callable[[int, float], bool]:
    """``gone(pid, seconds)``: whether the process ends within ``seconds`` (a killed submission's
    own children must end with it)."""
    def wait(pid: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.05)
        return not _running(pid)
    return wait


@pytest.fixture
def still_running() -> Callable[[list[int], float], bool]:
    """``still_running(pids, seconds)``: whether every one of the processes keeps running for
    ``seconds``, watched together (one wait for all, not one after the other)."""
    def watch(pids: list[int], seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not all(_running(pid) for pid in pids):
                return False
            time.sleep(0.05)
        return all(_running(pid) for pid in pids)
    return watch


def _without_seconds(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _without_seconds(v) for k, v in data.items() if k != "seconds"}
    return [_without_seconds(v) for v in data] if isinstance(data, list) else data


@pytest.fixture
def json_without_timings() -> Callable[[Path], Any]:
    """``read(path)``: a JSON file's content without its ``seconds`` fields (the only part that may
    differ between runs made with other --jobs, executors or a cache)."""
    return lambda path: _without_seconds(json.loads(Path(path).read_text()))


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    nodeid, group = request.node.nodeid, _group(request.node)
    if group is not None:  # the same numbers under xdist, whose group suffix the id then carries
        nodeid = nodeid.removesuffix(f"@{group}")
    return np.random.default_rng(zlib.crc32(nodeid.encode()))


def _scenario(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get("catalogue_result")


def _group(item: pytest.Item) -> str | None:
    """The xdist group of a test: the tests that share an expensive fixture run on one worker, so
    that it is computed once, not once per worker. A catalogue scenario's tests are one group
    (``catalogue_result``, session-scoped); otherwise the tests of a module that use a
    module-scoped fixture are one group, run in their module's order (a module's report, audit or
    planted defects are made once, and a test that finds the fixture as an earlier test of its
    module left it still does); a test file may name a group itself with the ``xdist_group`` mark
    ("torch-in-process": the tests of ``make test-fast`` that import torch in the pytest process, and
    build torch optimizers there, the first of which imports torch._dynamo, a second of CPU each, so
    that one worker pays them, not each; "jax-in-process" likewise; torch and JAX are imported when a
    test first uses them, ``tests/on_first_use.py``); any other test goes to whichever worker is free."""
    name = _scenario(item)
    if name is not None:
        return f"catalogue:{name}"
    mark = item.get_closest_marker("xdist_group")  # named in a test file (the group "torch-in-process")
    if mark is not None:
        return str(mark.kwargs["name"] if "name" in mark.kwargs else mark.args[0])
    info = getattr(item, "_fixtureinfo", None)
    # a module-scoped fixture of a test module or conftest (baseid '' is a parametrize argument)
    if info is not None and any(definitions and definitions[-1].scope == "module" and definitions[-1].baseid
                                for definitions in info.name2fixturedefs.values()):
        # no "@" or "]" in the name: xdist finds the group after the last "@" that follows the last "]"
        return f"module:{item.path.name}".replace("@", "_").replace("]", "_")
    return None


def pytest_itemcollected(item: pytest.Item) -> None:
    """Every test that runs a catalogue scenario is slow (before ``-m`` selects); every test with
    a group (``_group``) is marked with it (see ``_keep_groups_together``)."""
    if _scenario(item) is not None:
        item.add_marker(pytest.mark.slow)
    group = _group(item)
    if group is not None:
        item.add_marker(pytest.mark.xdist_group(name=group))


@pytest.hookimpl(trylast=True)  # after pytest's own reordering: this order is final
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the tests that use ``catalogue_result`` last, grouped by scenario (in order of first
    use, each group in collection order): pytest keeps one value of a session-scoped fixture
    at a time, so each scenario then runs exactly once. Under xdist this is each worker's order,
    and a scenario's tests all go to one worker (``_keep_groups_together``)."""
    first_use: dict[str, int] = {}
    for item in items:
        name = _scenario(item)
        if name is not None:
            first_use.setdefault(name, len(first_use))
    others = [item for item in items if _scenario(item) is None]
    grouped = sorted((item for item in items if _scenario(item) is not None),
                     key=lambda item: first_use[_scenario(item) or ""])
    items[:] = others + grouped
    _keep_groups_together(config, items)


def _keep_groups_together(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker under ``--dist loadgroup`` (``make test``), give each grouped test the
    ``@group`` suffix on its node id that the loadgroup scheduler groups by, so that every test of
    a group is sent to the same worker (and a catalogue scenario runs once, not once per worker).

    xdist 3.8.0 adds that suffix itself from the ``xdist_group`` mark, but by assigning the old
    ``item._nodeid``, which pytest 9.2 no longer reads (its node ids are structured ``NodeId``s):
    the groups are then silently ignored (pytest-dev/pytest-xdist#1386, open; the fix proposed in
    #1388 sets the structured id, as here). Where xdist did add the suffix, nothing changes; if
    the suffix does not take (a pytest or xdist upgrade), this stops the run instead of letting
    every worker compute every scenario."""
    if not getattr(config.option, "loadgroup", False):  # set in xdist's workers only
        return
    for item in items:
        group = _group(item)
        if group is None:
            continue
        suffix = f"@{group}"
        if not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)
        if not item.nodeid.endswith(suffix):
            raise pytest.UsageError(f"tests/conftest.py could not put {item.nodeid} in its xdist group {group}: "
                                    "check the pytest-xdist / pytest versions (pytest-dev/pytest-xdist#1386)")
