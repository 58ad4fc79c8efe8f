"""The adapter interface: everything the rest of the harness asks of an implementation.

Each implementation (the NumPy reference, Keras, torch) is one class satisfying
``Adapter``; the registry in ``harness.run.adapters`` holds one instance of each,
typed as ``Adapter``, so a missing or mistyped method fails the type check, not a
run. Parameters always cross this interface in the reference layout
(``layers.<i>.kernel`` of shape ``(n_in, n_out)``, ``layers.<i>.bias``), as NumPy
arrays of the run's dtype. Framework imports happen inside the methods only.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Protocol

import numpy as np

from harness.errors import BadInput
from harness.run.plan import TrainingPlan
from harness.run.trajectory import Trajectory
from harness.spec.conventions import FIELD, native, optimizer_class, pinned
from harness.spec.scenario import OptimizerSpec, Scenario

Params = dict[str, np.ndarray]
# ``Adapter.subnormals`` of a framework whose CPU kernels run with flush-to-zero and denormals-are-zero
FLUSHED = "flushed to zero (its CPU kernels run with flush-to-zero and denormals-are-zero)"
# ``Adapter.ties`` of a framework whose autograd gives each argument of max and min half the gradient at a tie
SPLIT = "split evenly between max's (or min's) two arguments where they are equal (JAX's derivative at a tie)"


class Adapter(Protocol):
    name: str  # the implementation's label: numpy, keras, torch
    conventions: tuple[str, ...]  # the optimizer conventions it can compute
    optimizer_module: str  # where its optimizer classes live, for messages
    # the name of its dtype rule that returns 32-bit results from some 64-bit operations, which a
    # scenario's ``keep_64_bit`` turns off (a control run); None when it has none
    narrowing_rule: str | None
    # how its arithmetic treats subnormal numbers when not as IEEE 754 does (TensorFlow and XLA on the
    # CPU flush them to zero), a property ``harness.judge.causes.subnormals`` measures; None: it keeps them
    subnormals: str | None
    # how its autograd differentiates a clip (max and min) at its bound when not as the reference does (the
    # whole gradient passes: TensorFlow's clip_by_value, torch's clamp), a property ``harness.judge.causes.ties``
    # measures; None: as the reference
    ties: str | None

    def available(self) -> str | None:
        """None, or why it cannot run here (a framework that is not installed)."""

    def native_convention(self, spec: OptimizerSpec) -> str:
        """The convention it computes for ``spec``, as ``harness.spec.conventions.native`` labels it
        ("common" when all conventions agree)."""

    def run(self, plan: TrainingPlan) -> Trajectory:
        """Train (or, forward-only, evaluate) the plan and record every step."""

    def trace_step(self, plan: TrainingPlan, step: int) -> Params:
        """Step ``step`` of ``run``, stage by stage (``harness.run.trajectory.trace_stages``)."""

    def forward(self, scenario: Scenario, params: Params, X: np.ndarray) -> list[np.ndarray]:
        """Every layer's activations on ``X`` (in ``X``'s dtype) with ``params``."""

    def loss(self, scenario: Scenario, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """The batch-mean loss of the scenario's training (its ``loss`` and cross-entropy guard ``clip``)."""

    def gradients(self, scenario: Scenario, params: Params, X: np.ndarray,
                  y: np.ndarray) -> tuple[np.ndarray, Params]:
        """The scenario's batch-mean loss on ``(X, y)`` and its gradient for every parameter."""

    def fit_baseline_seconds(self, plan: TrainingPlan) -> float | None:
        """Seconds of the framework's own high-level training loop on the plan (Keras'
        ``model.fit``), None when it has none."""


def missing(*modules: str) -> str | None:
    """``Adapter.available`` for an adapter that needs ``modules``: the first one not installed, said
    so ("torch is not installed"), else None. Finds the modules without importing them."""
    absent = next((m for m in modules if importlib.util.find_spec(m) is None), None)
    return None if absent is None else f"{absent} is not installed"


def check_expressible(adapter: Adapter, spec: OptimizerSpec, *, file: str | Path, field: str = FIELD) -> None:
    """Raise ``BadInput`` when the spec pins a convention the adapter cannot compute (Keras and
    torch run only their own optimizer classes). A pin is fine when it computes the same arithmetic
    for this spec as one of the adapter's conventions (``native``): any pin where all agree,
    "keras" and "keras-unrounded" alike where Keras on TensorFlow rounds nothing."""
    wanted = pinned(spec)
    if wanted is None or any(native(spec, wanted) == native(spec, c) for c in adapter.conventions):
        return
    cls = f"{adapter.optimizer_module}.{optimizer_class(spec)}"
    raise BadInput(file, field, f"a convention {adapter.name} can express ({cls} computes the "
                                f"{adapter.native_convention(spec)!r} convention)", wanted)
