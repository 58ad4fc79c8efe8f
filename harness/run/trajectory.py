"""What one framework's run of one scenario produced, step by step.

Step ``t`` holds the batch loss before the update, the gradients of that batch,
and the parameters after the update. ``steps`` counts the updates made; a run
that stops early (``early_stop_tol``) records the step where it stopped.
Every run also records each layer's activations on the whole data set, computed
by the implementation's own forward pass, with the initial parameters
(``outputs_initial``) and the final ones (``outputs_final``); a forward-only
scenario makes no step and records only those.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
        return cls(framework=framework, dtype=dtype, status=CRASHED, message=f"{type(exc).__name__}: {last}")


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
