"""What one framework's run of one scenario produced, step by step.

Step ``t`` holds the batch loss before the update, the gradients of that batch,
and the parameters after the update. ``steps`` counts the updates made; a run
that stops early (``early_stop_tol``) records the step where it stopped.
Every run also records each layer's activations on the whole data set, computed
by the implementation's own forward pass, with the initial parameters
(``outputs_initial``) and the final ones (``outputs_final``); a forward-only
scenario makes no step and records only those.

Two facts about how the implementation computed are recorded by its own loop, from its own
tensors, so the diagnosis can measure them instead of assuming them (``harness.judge.causes``):
``computed_dtypes``, the dtype of each kind of tensor it computed with (a float32 run computed in
float64 is a defect, not drift), and ``batch_rows``, the rows of the data set each step's batch
actually held (identified by content, ``RowIds``: reordered, dropped or repeated batches show).
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import exception_line

OK, SKIPPED, CRASHED = "ok", "skipped", "crashed"


@dataclass
class Trajectory:
    framework: str
    dtype: str
    status: str = OK
    message: str = ""
    convention: str = ""
    losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    params: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (steps, *shape)
    grads: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (steps, *shape)
    initial_params: dict[str, np.ndarray] = field(default_factory=dict)
    outputs_initial: list[np.ndarray] = field(default_factory=list)  # per layer, on the whole X
    outputs_final: list[np.ndarray] = field(default_factory=list)
    stopped_early_at: int | None = None
    seconds: float = 0.0
    computed_dtypes: dict[str, str] = field(default_factory=dict)  # "parameters"/"loss"/"gradients" -> dtype name
    batch_rows: list[np.ndarray] = field(default_factory=list)  # per step: the row ids of X the batch held
    device: str = ""  # what the implementation saw of the machine's accelerators (runs use none)
    # the framework functions that returned a narrower float than their float64 inputs in the run's
    # forward pass or first step (Keras on JAX and torch: their dtype rules) -> that dtype; empty
    # where none did or where not watched
    narrowed_ops: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def steps(self) -> int:
        return int(self.losses.shape[0])

    @property
    def final_params(self) -> dict[str, np.ndarray]:
        if self.steps == 0:
            return dict(self.initial_params)
        return {name: values[-1] for name, values in self.params.items()}

    def params_before(self, step: int) -> dict[str, np.ndarray]:
        """The parameters the model had when step ``step`` computed its loss."""
        if step == 0:
            return dict(self.initial_params)
        return {name: values[step - 1] for name, values in self.params.items()}

    @property
    def first_nonfinite_step(self) -> int | None:
        """The first step whose loss or updated parameters hold inf or nan (None if none)."""
        bad = ~np.isfinite(self.losses)
        for values in self.params.values():
            bad |= ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
        hits = np.flatnonzero(bad)
        return int(hits[0]) if hits.size else None

    @classmethod
    def skipped(cls, framework: str, dtype: str, reason: str) -> "Trajectory":
        return cls(framework=framework, dtype=dtype, status=SKIPPED, message=reason)

    @classmethod
    def crashed(cls, framework: str, dtype: str, exc: BaseException) -> "Trajectory":
        """The exception's type and last line, and where in an implementation's code it was raised
        (``crash_site``), e.g. ``TypeError: ... (at reference/layers.py:54 in Dense.backward)``."""
        site = crash_site(exc)
        return cls(framework=framework, dtype=dtype, status=CRASHED,
                   message=exception_line(exc) + (f" (at {site})" if site else ""))


PROJECT = Path(__file__).resolve().parents[2]
DISPATCH = (PROJECT / "harness" / "run" / "adapters" / "__init__.py", PROJECT / "harness" / "run" / "adapters" /
            "workers.py")  # they call an implementation; the crash is in what they call


def crash_site(exc: BaseException) -> str:
    """``file:line in function`` of the innermost frame of ``exc``'s traceback in an
    implementation's code (the reference, ``reference/``, or the harness, ``harness/``, but not
    the code that dispatches runs), the file relative to the project; "" when no frame is (e.g. an
    exception that crossed from a worker process without its traceback)."""
    site = ""
    for frame, line in traceback.walk_tb(exc.__traceback__):
        path = Path(frame.f_code.co_filename).resolve()
        if path in DISPATCH or not any(path.is_relative_to(PROJECT / part) for part in ("reference", "harness")):
            continue
        site = f"{path.relative_to(PROJECT).as_posix()}:{line} in {frame.f_code.co_qualname}"
    return site


class RowIds:
    """Rows of a data set identified by their content: ``ids(batch)`` gives, for each row of
    ``batch``, the index in ``X`` of the first row with the same bytes (-1 for a row not in ``X``),
    so a batch's ids say which rows an implementation actually trained on, whatever indices it
    used to gather them (equal rows share one id: they are interchangeable)."""

    def __init__(self, X: np.ndarray) -> None:
        self._row = np.dtype((np.void, X.dtype.itemsize * int(np.prod(X.shape[1:], dtype=np.int64))))
        keys = np.ascontiguousarray(X).view(self._row).ravel()
        order = np.argsort(keys, kind="stable")  # stable: among equal rows, the first index comes first
        self._sorted, self._order = keys[order], order
        first = np.ones(len(order), dtype=bool)
        first[1:] = self._sorted[1:] != self._sorted[:-1]
        self._first = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))  # first of each run
        self._dtype = X.dtype

    def ids(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] == 0 or self._sorted.size == 0:
            return np.full(batch.shape[0], -1, dtype=np.int64)
        keys = np.ascontiguousarray(batch, dtype=self._dtype).view(self._row).ravel()
        at = np.minimum(np.searchsorted(self._sorted, keys), self._sorted.size - 1)
        found = self._sorted[at] == keys
        return np.where(found, self._order[self._first[at]], -1).astype(np.int64)


def dtype_names(**tensors: Any) -> dict[str, str]:
    """``{"parameters": "float64", ...}`` from framework tensors or NumPy arrays (their ``dtype``
    as NumPy names it: torch's ``torch.float64`` and TensorFlow's ``tf.float64`` both give
    "float64")."""
    def name(dtype: Any) -> str:
        named = getattr(dtype, "name", None)  # NumPy's and TensorFlow's dtypes
        return named if isinstance(named, str) else str(dtype).rsplit(".", 1)[-1]  # torch.float64
    return {kind: name(t.dtype) for kind, t in tensors.items()}


class TrajectoryRecorder:
    """Preallocated per-step arrays that adapters fill in (NumPy and torch loops)."""

    def __init__(self, max_steps: int, initial_params: dict[str, np.ndarray]) -> None:
        self.losses = np.empty(max_steps, dtype=next(iter(initial_params.values())).dtype)
        self.params = {k: np.empty((max_steps, *v.shape), v.dtype) for k, v in initial_params.items()}
        self.grads = {k: np.empty((max_steps, *v.shape), v.dtype) for k, v in initial_params.items()}
        self.steps = 0

    def record(self, loss, grads: dict[str, np.ndarray], params: dict[str, np.ndarray]) -> None:
        t = self.steps
        self.losses[t] = loss
        for name, value in params.items():
            self.params[name][t] = value
            self.grads[name][t] = grads[name]
        self.steps += 1

    def finish(self, trajectory: Trajectory) -> Trajectory:
        n = self.steps
        trajectory.losses = self.losses[:n].copy()
        trajectory.params = {k: v[:n].copy() for k, v in self.params.items()}
        trajectory.grads = {k: v[:n].copy() for k, v in self.grads.items()}
        return trajectory


def should_stop(loss: float | np.floating[Any] | np.ndarray, previous: float | np.floating[Any] | np.ndarray,
                tol: float | None) -> bool:
    """The labs' early stop: before the update, when |batch_loss - previous_batch_loss| < tol."""
    if tol is None:
        return False
    with np.errstate(invalid="ignore"):  # inf - inf = nan: a diverged run never stops early
        return bool(abs(loss - previous) < tol)


def trace_stages(scenario) -> list[str]:
    """The quantities of one training step in data-flow order, as ``trace_step`` names them.

    ``params <p>`` entering the step, ``output layers.<i>`` (after the activation),
    ``loss``, ``gradient <p>`` from the last layer down (backpropagation order),
    ``updated <p>`` after the optimizer step. Every value is in the reference layout.
    """
    names = scenario.param_names()
    backprop = sorted(names, key=lambda n: -int(n.split(".")[1]))  # stable: kernel before bias in a layer
    return ([f"params {n}" for n in names] + [f"output layers.{i}" for i in range(len(scenario.layers))]
            + ["loss"] + [f"gradient {n}" for n in backprop] + [f"updated {n}" for n in names])
