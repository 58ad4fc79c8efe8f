"""What the catalogue exercises: one row per feature of the scenario format (a *cell*), and the
scenarios (variants included) that cover it.

Most cells are read from the scenario files: each activation in a trained and in a forward-only
network, each loss, each optimizer and each of its options (set explicitly; a boolean or momentum
only when on), full batches, equal mini-batches and a partial last batch, the batch order, the
softmax axis, biases. Three cells are facts about the run, not the file, and are measured on the
float64 NumPy reference run (``runs``, else run here: NumPy only, a few seconds for the catalogue),
replaying each step's batch with the parameters that step started from:

* **the cross-entropy guard binds**: ``clip = "keras"`` when some output probability of some batch
  (categorical: after Keras' renormalisation) lies outside ``[1e-7, 1 - 1e-7]``; ``clip = "torch"``
  when ``p (1 - p) < 1e-12`` (binary: ``BCELoss``'s gradient floor) or ``log p < -100`` (the log
  clamp). A guard that never binds leaves the run identical to ``clip = "none"``.
* **exact zeros into a ReLU**: some pre-activation ``z`` of a ReLU layer is exactly 0 (where the
  frameworks' ``ReLU'(0) = 0`` convention decides the gradient).
* **the early stop triggers**: the run stopped before its last step (``stopped_early_at``).

``coverage_table`` returns the cells as a DataFrame, ``coverage_markdown`` as the reports index's
section; ``tests/test_coverage.py`` fails when a catalogue cell becomes uncovered.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from harness.run.adapters import run_framework
from harness.run.plan import make_plan
from harness.run.trajectory import Trajectory
from harness.spec.catalogue import catalogue_scenarios
from harness.spec.data import data_rows
from harness.spec.scenario import OPTIMIZER_OPTIONS, Scenario
from reference.activations import ACTIVATIONS
from reference.layers import Dense
from reference.losses import KERAS_EPSILON, LOSSES, TORCH_GRAD_FLOOR, TORCH_LOG_FLOOR
from reference.network import Network

Cell = tuple[str, str]  # (feature, case)
COLUMNS = ["feature", "case", "covered", "count", "scenarios"]
ROWS_AXES = (0, -2)  # a softmax over the rows of a layer's (n, units) output; -1 and 1 are over the units

TRAINED, FORWARD = "activation, trained", "activation, forward-only"
CLIP_BINDS = "cross-entropy guard"
RELU_ZEROS = ("ReLU", "exact zeros into a trained ReLU")
EARLY_STOP = "early stop"


def _optimizer_cells() -> list[Cell]:
    cells = []
    for name, options in OPTIMIZER_OPTIONS.items():
        cells.append(("optimizer", name))
        cells += [("optimizer", f"{name} {option}") for option in options if option != "convention"]
    return cells


CELLS: list[Cell] = (
    [(TRAINED, a) for a in ACTIVATIONS] + [(FORWARD, a) for a in ACTIVATIONS]
    + [("loss", loss) for loss in LOSSES]
    + _optimizer_cells()
    + [("batches", "full batch"), ("batches", "equal mini-batches"), ("batches", "partial last batch"),
       ("batches", "one row per batch")]
    + [("batch order", "in order"), ("batch order", "shuffled per epoch")]
    + [(CLIP_BINDS, "none (log as written)"), (CLIP_BINDS, "keras clip binds"), (CLIP_BINDS, "torch clip binds")]
    + [RELU_ZEROS]
    + [("softmax axis", "over the units (-1, 1)"), ("softmax axis", "over the rows (0, -2)")]
    + [(EARLY_STOP, "triggers"), (EARLY_STOP, "set, never triggers")]
    + [("layers", "one layer"), ("layers", "two or more layers"), ("layers", "without bias")]
)


def needs_run(scenario: Scenario) -> bool:
    """Whether a cell of this scenario depends on its run (a guard that may bind, a ReLU, an early stop)."""
    training = scenario.training
    if training is None:
        return False
    return ((training.loss != "mse" and training.clip != "none") or training.early_stop_tol is not None
            or any(layer.activation == "relu" for layer in scenario.layers))


def reference_run(scenario: Scenario) -> Trajectory:
    """The float64 NumPy reference run of ``scenario`` (its default optimizer convention)."""
    return run_framework("numpy", make_plan(scenario, "float64"))


def _static_cells(scenario: Scenario) -> set[Cell]:
    cells: set[Cell] = set()
    kind = TRAINED if scenario.trains else FORWARD
    cells |= {(kind, layer.activation) for layer in scenario.layers}
    for layer in scenario.layers:
        if layer.activation == "softmax":
            rows_axis = layer.axis in ROWS_AXES
            cells.add(("softmax axis", "over the rows (0, -2)" if rows_axis else "over the units (-1, 1)"))
    cells.add(("layers", "one layer" if len(scenario.layers) == 1 else "two or more layers"))
    if any(not layer.use_bias for layer in scenario.layers):
        cells.add(("layers", "without bias"))
    training = scenario.training
    if training is None:
        return cells
    cells.add(("loss", training.loss))
    spec = training.optimizer
    cells.add(("optimizer", spec.name))
    for option, value in spec.options.items():
        if option != "convention" and value is not False and value != 0:
            cells.add(("optimizer", f"{spec.name} {option}"))
    rows = data_rows(scenario.data)
    size = rows if training.batch_size is None else min(training.batch_size, rows)
    if size == rows:
        cells.add(("batches", "full batch"))
    elif rows % size:
        cells.add(("batches", "partial last batch"))
    else:
        cells.add(("batches", "equal mini-batches"))
    if size == 1:
        cells.add(("batches", "one row per batch"))
    cells.add(("batch order", "shuffled per epoch" if training.shuffle else "in order"))
    if training.loss != "mse" and training.clip == "none":
        cells.add((CLIP_BINDS, "none (log as written)"))
    return cells


def guard_binds(loss: str, clip: str, p: np.ndarray) -> bool:
    """Whether the cross-entropy guard ``clip`` changes the loss or its gradient on outputs ``p``
    (see the module docstring)."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(all="ignore"):
        if clip == "keras":
            q = p / np.sum(p, axis=-1, keepdims=True) if loss == "categorical_crossentropy" else p
            return bool(np.any((q < KERAS_EPSILON) | (q > 1 - KERAS_EPSILON)))
        if clip == "torch":
            log_floor = math.exp(TORCH_LOG_FLOOR)
            if loss == "binary_crossentropy":
                return bool(np.any((p * (1 - p) < TORCH_GRAD_FLOOR) | (p < log_floor) | (1 - p < log_floor)))
            return bool(np.any(p < log_floor))
    return False


def _run_cells(scenario: Scenario, run: Trajectory) -> set[Cell]:
    """The cells measured on the run: guard binding and ReLU zeros by replaying each step's batch
    with the parameters it started from, and whether the early stop fired."""
    training = scenario.training
    assert training is not None, "a forward-only scenario has no run-dependent cells"
    cells: set[Cell] = set()
    if training.early_stop_tol is not None:
        cells.add((EARLY_STOP, "triggers" if run.stopped_early_at is not None else "set, never triggers"))
    relu = [i for i, layer in enumerate(scenario.layers) if layer.activation == "relu"]
    guarded = training.loss != "mse" and training.clip != "none"
    if not relu and not guarded:
        return cells
    plan = make_plan(scenario, "float64")
    network = Network(layers=tuple(Dense(units=layer.units, activation=layer.activation, use_bias=layer.use_bias,
                                         axis=layer.axis) for layer in scenario.layers))
    binds = zeros = False
    with np.errstate(all="ignore"):
        for step in range(run.steps):
            idx = plan.batch_indices(step)
            output, caches = network.forward(plan.X[idx], run.params_before(step))
            zeros = zeros or any(bool(np.any(caches[i].z == 0)) for i in relu)
            binds = binds or (guarded and guard_binds(training.loss, training.clip, output))
            if zeros == bool(relu) and binds == guarded:
                break
    if zeros:
        cells.add(RELU_ZEROS)
    if binds:
        cells.add((CLIP_BINDS, f"{training.clip} clip binds"))
    return cells


def scenario_cells(scenario: Scenario, run: Trajectory | None = None) -> set[Cell]:
    """The cells ``scenario`` covers; ``run``: its float64 reference run (made here when a cell needs it)."""
    cells = _static_cells(scenario)
    if needs_run(scenario):
        cells |= _run_cells(scenario, reference_run(scenario) if run is None else run)
    return cells


def coverage_table(scenarios: Sequence[Scenario] | None = None, *,
                   runs: Mapping[str, Trajectory] | None = None) -> pd.DataFrame:
    """One row per cell (``CELLS``): ``feature``, ``case``, ``covered``, ``count`` and ``scenarios``
    (the names covering it, comma-separated). ``scenarios`` defaults to the catalogue (variants
    included); ``runs`` maps a scenario's name to its float64 reference run (``Trajectory``, e.g.
    ``result.runs[(reference_label(result, None), "float64")]``), else it is run here when needed."""
    chosen = catalogue_scenarios() if scenarios is None else list(scenarios)
    covering: dict[Cell, list[str]] = {cell: [] for cell in CELLS}
    for scenario in chosen:
        for cell in sorted(scenario_cells(scenario, (runs or {}).get(scenario.name))):
            covering.setdefault(cell, []).append(scenario.name)
    rows = [{"feature": feature, "case": case, "covered": bool(names), "count": len(names),
             "scenarios": ", ".join(names)} for (feature, case), names in covering.items()]
    return pd.DataFrame(rows, columns=COLUMNS)


def uncovered(table: pd.DataFrame) -> list[str]:
    """``feature: case`` of every cell no scenario covers."""
    return [f"{r.feature}: {r.case}" for r in table.itertuples() if not r.covered]


def coverage_markdown(scenarios: Sequence[Scenario] | None = None, *, runs: Mapping[str, Trajectory] | None = None,
                      table: pd.DataFrame | None = None, max_names: int = 4) -> str:
    """The coverage table as a markdown section (a heading, a one-line summary, the table): each cell
    with up to ``max_names`` covering scenarios, or **not covered**."""
    table = coverage_table(scenarios, runs=runs) if table is None else table
    missing = uncovered(table)
    lines = ["## Coverage", "",
             f"{len(table) - len(missing)} of {len(table)} features of the scenario format are exercised by at least "
             "one scenario" + (f"; not covered: {', '.join(missing)}." if missing else "."),
             "Guard binding, exact ReLU zeros and early stops are measured on the float64 reference run "
             "(`harness/render/coverage.py`).", "",
             "| feature | case | scenarios |", "| --- | --- | --- |"]
    for r in table.itertuples():
        names = str(r.scenarios).split(", ") if r.covered else []
        shown = ", ".join(f"`{n}`" for n in names[:max_names])
        more = f" and {len(names) - max_names} more" if len(names) > max_names else ""
        lines.append(f"| {r.feature} | {r.case} | {shown + more if names else '**not covered**'} |")
    return "\n".join(lines) + "\n"
