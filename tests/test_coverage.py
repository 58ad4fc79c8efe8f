"""The catalogue covers every feature of the scenario format (harness/render/coverage.py), and the
table says so only when a scenario really exercises it (a guard that binds, a ReLU fed exact zeros,
an early stop that fires: measured on the run)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness.render.coverage import (
    CELLS,
    CLIP_BINDS,
    RELU_ZEROS,
    coverage_markdown,
    coverage_table,
    guard_binds,
    needs_run,
    reference_run,
    scenario_cells,
    uncovered,
)
from harness.run.adapters import run_framework
from harness.run.plan import make_plan
from harness.spec.catalogue import catalogue_scenarios, resolve

CATALOGUE = catalogue_scenarios()


@pytest.fixture(scope="module")
def table():
    return coverage_table(CATALOGUE)


@pytest.fixture(scope="module")
def runs():
    """The float64 reference run of each catalogue scenario with a cell measured on its run, made
    once for the tests that build tables of part of the catalogue (``coverage_table(runs=...)``,
    as the report passes the runs it made; ``table`` makes its own)."""
    return {s.name: reference_run(s) for s in CATALOGUE if needs_run(s)}


def test_the_catalogue_covers_every_cell(table):
    assert list(zip(table.feature, table.case)) == CELLS
    assert uncovered(table) == [], f"catalogue cells no scenario covers: {uncovered(table)}"
    assert (table["count"] == table.scenarios.str.split(", ").str.len()).all()


@pytest.mark.parametrize("removed, cells", [
    ("minibatch-nesterov", ["optimizer: sgd nesterov", "batches: partial last batch"]),
    ("relu-exact-zeros", ["ReLU: exact zeros into a trained ReLU"]),
    ("bce-clip-binds-torch", ["cross-entropy guard: torch clip binds"]),
    ("tanh-adam", ["activation, trained: tanh", "optimizer: adam beta_1", "optimizer: adam amsgrad"]),
])
def test_a_cell_without_its_scenario_is_reported_uncovered(removed, cells, runs):
    """The coverage test fails when the one scenario covering a cell leaves the catalogue."""
    t = coverage_table([s for s in CATALOGUE if s.name != removed], runs=runs)
    assert set(cells) <= set(uncovered(t))
    markdown = coverage_markdown(table=t)
    assert f"{len(t) - len(uncovered(t))} of {len(t)} features" in markdown and "**not covered**" in markdown


def test_markdown_lists_each_cell_with_its_scenarios(table):
    markdown = coverage_markdown(table=table, max_names=2)
    assert markdown.startswith("## Coverage\n") and f"{len(CELLS)} of {len(CELLS)} features" in markdown
    assert "| optimizer | sgd nesterov | `minibatch-nesterov` |" in markdown
    assert "| loss | mse | `" in markdown and " more |" in markdown and "not covered" not in markdown
    assert len([line for line in markdown.splitlines() if line.startswith("| ")]) == len(CELLS) + 2  # + header, rule


@pytest.mark.parametrize("loss, clip, p, binds", [
    ("binary_crossentropy", "keras", [[0.5], [2e-8]], True),  # below 1e-7: clipped
    ("binary_crossentropy", "keras", [[0.5], [1 - 2e-8]], True),
    ("binary_crossentropy", "keras", [[0.5], [2e-7]], False),
    ("binary_crossentropy", "torch", [[0.5], [5e-13]], True),  # p (1 - p) < 1e-12: BCELoss's gradient floor
    ("binary_crossentropy", "torch", [[0.5], [2e-12]], False),
    ("categorical_crossentropy", "keras", [[2e-8, 1 - 2e-8]], True),
    ("categorical_crossentropy", "torch", [[1e-30, 1.0]], False),  # only the log clamp at -100 binds
    ("categorical_crossentropy", "torch", [[1e-44, 1.0]], True),
    ("binary_crossentropy", "none", [[0.0], [1.0]], False),
])
def test_guard_binding(loss, clip, p, binds):
    assert guard_binds(loss, clip, np.array(p)) is binds


def test_guard_binding_and_relu_zeros_are_measured_on_the_run():
    """xor-perceptron declares clip = "keras" and has a ReLU layer, but its outputs stay inside
    [1e-7, 1 - 1e-7] and no pre-activation is exactly 0 (random normal weights): neither cell."""
    xor = scenario_cells(resolve("xor-perceptron"))
    assert (CLIP_BINDS, "keras clip binds") not in xor and RELU_ZEROS not in xor
    assert ("activation, trained", "relu") in xor
    assert (CLIP_BINDS, "keras clip binds") in scenario_cells(resolve("bce-clip-binds-keras"))
    zeros = resolve("relu-exact-zeros")
    assert RELU_ZEROS in scenario_cells(zeros)
    # The same network with its kernel moved off the exact zeros: no pre-activation is 0 any more.
    layers = (dataclasses.replace(zeros.layers[0], kernel=zeros.layers[0].kernel + 0.01), *zeros.layers[1:])
    shifted = dataclasses.replace(zeros, layers=layers, data=dataclasses.replace(zeros.data, X=zeros.data.X + 0.1))
    assert RELU_ZEROS not in scenario_cells(shifted)


def test_early_stop_cells_come_from_the_run_given():
    """A run passed in is used as is (the report passes the reference run it already made)."""
    scenario = resolve("minibatch-regression")
    run = run_framework("numpy", make_plan(scenario, "float64"))
    assert run.stopped_early_at is not None
    assert ("early stop", "triggers") in scenario_cells(scenario, run)
    never = dataclasses.replace(run, stopped_early_at=None)
    assert ("early stop", "set, never triggers") in scenario_cells(scenario, never)
    table = coverage_table([scenario], runs={scenario.name: never})
    assert uncovered(table).count("early stop: triggers") == 1
    assert ("early stop", "set, never triggers") in scenario_cells(resolve("minibatch-diverging"))
