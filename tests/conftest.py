"""Shared fixtures.

``catalogue_result``: a catalogue scenario run in every implementation and dtype, once per
session. Tests ask for it by name with indirect parametrization::

    @pytest.mark.parametrize("catalogue_result", ["xor-perceptron"], indirect=True, scope="session")
    def test_something(catalogue_result): ...

Parametrize with ``scope="session"`` (else pytest scopes the value to the test). The tests
that use it run last, grouped by scenario, so that each scenario runs exactly once and only
one result is held in memory at a time; they are marked ``slow`` (``make test-fast`` leaves
them out). Under pytest-xdist (``make test``: ``-n auto --dist loadgroup``) the tests of one
scenario form one ``xdist_group``: they all go to one worker, so the scenario still runs once.

``frameworks_in_process``: keras and torch run in the test's process instead of their workers
(``harness.run.adapters.workers.inline``), so a monkeypatched framework class takes effect.

``gone``: waits for a process to end (a killed submission's children end with it).

``rng``: a NumPy generator seeded from the test's own id, so a test draws the same numbers
whatever ran before it.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
import zlib
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The commands' run cache (harness.run.cache), for the tests that call them: one folder per
# session, removed at its end (never the repository's .nn-parity-cache/).
_CACHE = tempfile.mkdtemp(prefix="nn-parity-test-cache-")
os.environ["NN_PARITY_CACHE"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

pytest_plugins = ["pytester"]  # tests/test_plugin.py runs pytest on scenario folders

from harness.run.adapters.workers import inline  # noqa: E402
from harness.run.runner import ScenarioResult, run_scenario  # noqa: E402
from harness.spec.catalogue import resolve  # noqa: E402


@pytest.fixture(scope="session")
def catalogue_result(request: pytest.FixtureRequest) -> ScenarioResult:
    return run_scenario(resolve(request.param))


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
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def _scenario(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get("catalogue_result")


def pytest_itemcollected(item: pytest.Item) -> None:
    """Every test that runs a catalogue scenario is slow (before ``-m`` selects), and the tests of
    one scenario are one xdist group: with ``--dist loadgroup`` they all run on the same worker,
    one after the other, so the session fixture computes the scenario once. (The group is set
    here, during collection: xdist reads it in its own ``pytest_collection_modifyitems``, which
    runs before this module's.)"""
    name = _scenario(item)
    if name is not None:
        item.add_marker(pytest.mark.slow)
        item.add_marker(pytest.mark.xdist_group(name=f"catalogue:{name}"))


@pytest.hookimpl(trylast=True)  # after pytest's own reordering: this order is final
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that use ``catalogue_result`` last, grouped by scenario (in order of first
    use, each group in collection order): pytest keeps one value of a session-scoped fixture
    at a time, so each scenario then runs exactly once. Under xdist this is each worker's order;
    the ``xdist_group`` above keeps a scenario's tests together on one worker."""
    first_use: dict[str, int] = {}
    for item in items:
        name = _scenario(item)
        if name is not None:
            first_use.setdefault(name, len(first_use))
    others = [item for item in items if _scenario(item) is None]
    grouped = sorted((item for item in items if _scenario(item) is not None),
                     key=lambda item: first_use[_scenario(item) or ""])
    items[:] = others + grouped
