"""A training plan: everything a framework needs to run a scenario, made once in NumPy.

The harness owns the data, the initial weights and the batch order; adapters
only copy them in. Step ``t`` trains on ``batch_indices(t)``. Held-out
evaluation splits (``splits``, e.g. validation and test) ride along for
metrics; no framework trains on them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from harness.spec.data import make_data, make_splits
from harness.spec.initializers import draw
from harness.spec.scenario import Scenario, rows_per_batch
from reference.network import bias_name, kernel_name


@dataclass(frozen=True)
class TrainingPlan:
    scenario: Scenario
    dtype: str
    X: np.ndarray
    y: np.ndarray
    initial_params: dict[str, np.ndarray]
    orders: np.ndarray  # (epochs, N) when shuffling, else (1, N): the row order of each epoch
    bounds: tuple[tuple[int, int], ...]  # (start, end) of each batch within an epoch's order
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name -> (X, y), held out
    step_limit: int | None = None  # the run stops after this many steps (``first_steps``); None: it trains to the end

    @property
    def batches_per_epoch(self) -> int:
        return len(self.bounds)

    @property
    def max_steps(self) -> int:
        """0 for a forward-only scenario."""
        training = self.scenario.training
        steps = 0 if training is None else training.epochs * self.batches_per_epoch
        return steps if self.step_limit is None else min(steps, self.step_limit)

    def first_steps(self, n: int) -> "TrainingPlan":
        """The same plan cut after ``n`` steps: its run makes the same first steps as the whole plan's
        (the run cache's spot check, ``harness.run.cache``)."""
        return replace(self, step_limit=n)

    @property
    def early_stop_tol(self) -> float | None:
        training = self.scenario.training
        return None if training is None else training.early_stop_tol

    @property
    def is_full_batch_in_order(self) -> bool:
        """Every step trains on the whole data set in its original order."""
        return len(self.bounds) == 1 and self.orders.shape[0] == 1 and bool(
            np.array_equal(self.orders[0], np.arange(self.X.shape[0])))

    def batch_indices(self, step: int) -> np.ndarray:
        epoch, batch = divmod(step, self.batches_per_epoch)
        order = self.orders[epoch if self.orders.shape[0] > 1 else 0]
        start, end = self.bounds[batch]
        return order[start:end]

    def batch(self, step: int, *, full: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Step ``step``'s rows of ``X`` and ``y``: the arrays themselves (no copy) when every step is
        the whole data set in order (``full``: that test, when the caller already made it)."""
        if self.is_full_batch_in_order if full is None else full:
            return self.X, self.y
        idx = self.batch_indices(step)
        return self.X[idx], self.y[idx]


def make_plan(scenario: Scenario, dtype: str) -> TrainingPlan:
    X, y = make_data(scenario.data)
    n = X.shape[0]
    tr = scenario.training
    size = n if tr is None else rows_per_batch(tr, n)
    bounds = tuple((s, min(s + size, n)) for s in range(0, n, size))  # the last partial batch is kept
    if tr is not None and tr.shuffle:
        rs = np.random.RandomState(tr.shuffle_seed)  # as np.random.seed(s); np.random.shuffle(arange(N))
        orders = np.stack([rs.permutation(n) for _ in range(tr.epochs)])
    else:
        orders = np.arange(n)[None, :]
    cast = np.dtype(dtype)
    return TrainingPlan(
        scenario=scenario, dtype=dtype, X=X.astype(cast), y=y.astype(cast),
        initial_params={k: v.astype(cast) for k, v in initial_params(scenario).items()},
        orders=orders, bounds=bounds,
        splits={name: (Xs.astype(cast), ys.astype(cast)) for name, (Xs, ys) in make_splits(scenario.data).items()},
    )


def initial_params(scenario: Scenario) -> dict[str, np.ndarray]:
    """Initial parameters in float64, in the reference layout, named ``layers.<i>.kernel|bias``:
    the file's arrays, else its initializers' draws (a bias defaults to zeros)."""
    shapes = scenario.param_shapes()
    params: dict[str, np.ndarray] = {}
    for i, layer in enumerate(scenario.layers):
        k, b = kernel_name(i), bias_name(i)
        if layer.kernel is not None:
            params[k] = layer.kernel.copy()
        else:
            assert layer.kernel_initializer is not None  # the loader requires one of the two
            params[k] = draw(layer.kernel_initializer, shapes[k])
        if layer.use_bias:
            if layer.bias is not None:
                params[b] = layer.bias.copy()
            elif layer.bias_initializer is not None:
                params[b] = draw(layer.bias_initializer, shapes[b])
            else:
                params[b] = np.zeros(shapes[b])
    return params


def side_plan(plan: TrainingPlan, scenario: Scenario) -> TrainingPlan:
    """The same data, initial weights and batch order, trained as ``scenario`` says."""
    return plan if scenario is plan.scenario else replace(plan, scenario=scenario)
