"""Shared fixtures: each catalogue scenario is run once per test session (all
frameworks, both dtypes) and the result is shared by every test that needs it."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from harness.run.runner import ScenarioResult, run_scenario  # noqa: E402
from harness.spec.catalogue import catalogue_scenarios  # noqa: E402

CATALOGUE = catalogue_scenarios()
CATALOGUE_BY_NAME = {s.name: s for s in CATALOGUE}

_results: dict[str, ScenarioResult] = {}


def scenario_result(name: str) -> ScenarioResult:
    if name not in _results:
        _results[name] = run_scenario(CATALOGUE_BY_NAME[name])
    return _results[name]


@pytest.fixture
def result_of():
    return scenario_result
