"""Keras on torch: each Dense layer's ``call`` (its maths, as ``stateless_call`` runs it on JAX,
without ``Layer.__call__``'s per-call bookkeeping), ``loss.backward()``, the gradients from each
variable's ``.value.grad``, ``optimizer.apply`` under ``torch.no_grad()``; eagerly, one step at a time.
"""
from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from harness.run.adapters.keras_backend_model import BackendModel
from harness.run.adapters.keras_model import to_numpy
from harness.run.adapters.keras_narrowing import watch_torch
from harness.run.adapters.protocol import Params
from harness.run.plan import TrainingPlan
from harness.run.trajectory import RowIds, Trajectory, TrajectoryRecorder, dtype_names, should_stop


def _view(x: Any) -> np.ndarray:
    """A torch tensor's values as a NumPy array sharing its memory (copied by whoever keeps them)."""
    return x.detach().numpy()


class TorchModel(BackendModel):
    """The Keras model on torch, trained eagerly."""

    backend = "torch"

    def loss_and_grads(self, xb: np.ndarray, yb: np.ndarray) -> tuple[Any, list[Any]]:
        import torch

        self.model.zero_grad()
        a = torch.from_numpy(xb)
        for layer in self.layers:  # each Dense layer's own maths (``call``), as ``stateless_call`` runs it on JAX
            a = layer.call(a, training=True)
        loss = self.loss_fn(torch.from_numpy(yb), a)
        loss.backward()
        return loss, [v.value.grad for v in self.variables]

    def apply(self, grads: list[Any]) -> None:
        """The optimizer's update with ``grads`` (``self.variables`` order)."""
        import torch

        with torch.no_grad():
            self.optimizer.apply(grads, self.variables)

    def train_step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[Any, list[Any]]:
        """One update; returns the loss and the gradients it applied (``self.variables`` order)."""
        loss, grads = self.loss_and_grads(xb, yb)
        self.apply(grads)
        return loss, grads

    def first_outputs(self, X: np.ndarray) -> tuple[list[np.ndarray], dict[str, str]]:
        with watch_torch() as watch:
            outputs = self.outputs(X)
        return outputs, watch.found

    def train(self, plan: TrainingPlan, trajectory: Trajectory) -> None:
        """Each step: the loss and gradients, the labs' early stop tested on that loss (before the
        update, as the reference does), the update. The first step's operations are watched for
        narrowing (``watch_torch``)."""
        recorder = TrajectoryRecorder(plan.max_steps, plan.initial_params)
        rows = RowIds(plan.X)
        all_rows = rows.ids(plan.X)
        full, tol = plan.is_full_batch_in_order, plan.early_stop_tol
        previous: Any = np.inf
        for step in range(plan.max_steps):
            xb, yb = plan.batch(step, full=full)
            with watch_torch() if step == 0 else contextlib.nullcontext() as watch:
                loss, grads = self.loss_and_grads(xb, yb)
            if tol is not None:
                loss_now = _view(loss)[()]
                if should_stop(loss_now, previous, tol):
                    trajectory.stopped_early_at = step
                    break
                previous = loss_now
            with watch_torch() if step == 0 else contextlib.nullcontext() as watch_update:
                self.apply(grads)
            if watch is not None and watch_update is not None:  # step 0
                for found in (watch.found, watch_update.found):
                    for name, dtype in found.items():
                        trajectory.narrowed_ops.setdefault(name, dtype)
                trajectory.computed_dtypes = dtype_names(parameters=self.variables[0].value, loss=loss,
                                                         gradients=grads[0])
            recorder.record(_view(loss)[()], {n: _view(g) for n, g in zip(self.names, grads)},
                            {n: _view(v.value) for n, v in zip(self.names, self.variables)})
            trajectory.batch_rows.append(all_rows if xb is plan.X else rows.ids(xb))
        recorder.finish(trajectory)

    def trace_step(self, plan: TrainingPlan, step: int) -> Params:
        """Steps ``0 .. step-1`` as the run makes them, then step ``step``, recorded before and after."""
        xb, yb = plan.batch(step, full=False)
        for t in range(step):
            self.train_step(*plan.batch(t, full=False))
        trace = {f"params {n}": v for n, v in self.params().items()}
        trace.update({f"output layers.{i}": a for i, a in enumerate(self.outputs(xb))})
        loss, torch_grads = self.train_step(xb, yb)
        trace["loss"] = to_numpy(loss)
        trace.update({f"gradient {n}": to_numpy(g) for n, g in zip(self.names, torch_grads)})
        trace.update({f"updated {n}": v for n, v in self.params().items()})
        return trace
