"""The shared plan checked against the scenario's declaration, on every run.

Every implementation trains on the same plan (``harness.run.plan``: the data, the initial
parameters, the row order of each epoch, the batch bounds). A defect there is shared by all of
them, so no pair of runs can show it: they agree on the same wrong training. These invariants
restate what the scenario declares, without using ``harness.run.plan``'s code, and each broken one
is a fault of the harness itself (``plan_faults``, every text beginning "shared plan: "):

* each epoch's order is a permutation of all rows; without shuffling, one order, the identity;
* with shuffling, one order per epoch, and the epochs independent: not every epoch in one order
  when, for independent uniform shuffles, that has probability (1 / rows!)^(epochs - 1) below
  ``COINCIDENCE``; and no two epochs in one order when that has probability at most
  C(epochs, 2) / rows! below ``COINCIDENCE`` (3 rows over 2 epochs: 1/6, not tested; 12 rows
  over 1000 epochs: the first test only);
* the batches: consecutive, from row 0 to the last, each of the declared size but the last,
  which holds what is left (the partial last batch is kept);
* the initial parameters: a kernel or bias the file gives, exactly (in the run's dtype); zeros,
  ones and constants exactly; uniform and glorot_uniform draws within their declared bounds;
  random draws of at least ``MIN_SAMPLE`` values also by their statistics: the sample mean within
  ``SIGMAS`` standard errors of the declared mean, and, for normal draws, the sample standard
  deviation within ``SIGMAS`` of its own standard error (sigma / sqrt(2 (n - 1)), the normal
  approximation). Smaller draws have too few values for statistics and are checked by bounds
  only (normal: finite); ``plan_notes`` says which;
* the arrays in the run's dtype, X of (rows, input_dim), y of as many rows.
"""
from __future__ import annotations

import math

import numpy as np

from harness.run.plan import TrainingPlan
from harness.spec.initializers import Initializer

COINCIDENCE = 1e-9  # the largest chance of a false alarm the epochs' independence test allows
MIN_SAMPLE = 30  # fewer values: no statistical test of a random draw
SIGMAS = 7.0  # two-sided normal tail beyond 7 sigmas: 2.6e-12 per test
FAULT = "shared plan: "


def _distinct_epochs_expected(rows: int, epochs: int) -> bool:
    """Whether independent uniform shuffles of ``rows`` rows give ``epochs`` distinct orders
    except with probability below ``COINCIDENCE`` (union bound: C(epochs, 2) / rows!)."""
    if epochs < 2 or rows < 2:
        return False
    return math.log(math.comb(epochs, 2)) - math.lgamma(rows + 1) < math.log(COINCIDENCE)


def _some_distinct_expected(rows: int, epochs: int) -> bool:
    """Whether independent uniform shuffles give all ``epochs`` one order with probability
    (1 / rows!)^(epochs - 1) below ``COINCIDENCE``."""
    return epochs >= 2 and rows >= 2 and -(epochs - 1) * math.lgamma(rows + 1) < math.log(COINCIDENCE)


def _order_faults(plan: TrainingPlan) -> list[str]:
    training, rows = plan.scenario.training, plan.X.shape[0]
    assert training is not None
    orders = np.asarray(plan.orders)
    out = []
    expected = training.epochs if training.shuffle else 1
    if orders.ndim != 2 or orders.shape != (expected, rows):
        what = "one order per epoch" if training.shuffle else "one order"
        return [f"the row orders have shape {orders.shape}, where {what} of {rows} rows, ({expected}, {rows}), "
                "is declared"]
    every = np.arange(rows)
    for epoch, order in enumerate(orders):
        if not np.array_equal(np.sort(order), every):
            counts = np.bincount(order[(order >= 0) & (order < rows)], minlength=rows)
            out.append(f"epoch {epoch}'s order is not a permutation of the {rows} rows ({int((counts == 0).sum())} "
                       f"rows missing, {int((counts > 1).sum())} repeated)")
    if not training.shuffle:
        if not out and not np.array_equal(orders[0], every):
            out.append("the rows are reordered where shuffle = false declares their order in the data")
        return out
    epochs = training.epochs
    if _some_distinct_expected(rows, epochs) and all(np.array_equal(o, orders[0]) for o in orders[1:]):
        return out + [f"every one of the {epochs} epochs has one row order, where shuffle = true declares independent "
                      f"shuffles of the {rows} rows (probability (1/{rows}!)^{epochs - 1} by chance)"]
    if _distinct_epochs_expected(rows, epochs):
        seen: dict[bytes, int] = {}
        for epoch, order in enumerate(orders):
            key = order.astype(np.int64).tobytes()
            if key in seen:
                chance = math.comb(training.epochs, 2) / math.factorial(rows) if rows < 171 else 0.0
                out.append(f"epochs {seen[key]} and {epoch} share one row order, where shuffle = true declares "
                           f"independent shuffles of the {rows} rows (that two of {training.epochs} epochs coincide "
                           f"has probability <= {chance:.1e})")
                break
            seen[key] = epoch
    return out


def _batch_faults(plan: TrainingPlan) -> list[str]:
    training, rows = plan.scenario.training, plan.X.shape[0]
    assert training is not None
    size = rows if training.batch_size is None else min(training.batch_size, rows)
    declared = "full batch" if training.batch_size is None else f"batch_size {training.batch_size}"
    count = -(-rows // size)
    want = [(start, min(start + size, rows)) for start in range(0, count * size, size)]
    got = [tuple(int(v) for v in b) for b in plan.bounds]
    if got == want:
        return []
    return [f"the batches of an epoch are {got[:4]}{' ...' if len(got) > 4 else ''} ({len(got)} batches), where "
            f"{declared} on {rows} rows declares {count} consecutive batches of {size} rows"
            + (f", the last one of {rows - (count - 1) * size}" if rows % size else "")]


def _draw_faults(name: str, init: Initializer, values: np.ndarray) -> list[str]:
    v, opts, n = values.astype(np.float64).ravel(), init.options, values.size
    if not np.all(np.isfinite(v)):
        return [f"`{name}` ({init.name}) holds non-finite values"]
    exact = {"zeros": 0.0, "ones": 1.0, "constant": float(opts.get("value", 0.0))}
    if init.name in exact:
        want = np.asarray(exact[init.name], dtype=values.dtype)
        return [] if np.all(values == want) else [f"`{name}` is not all {float(want):g} ({init.name} declared)"]
    if init.name in ("uniform", "glorot_uniform"):
        if init.name == "uniform":
            low, high = float(opts.get("minval", -0.05)), float(opts.get("maxval", 0.05))
        else:
            shape = values.shape
            fans = shape[0] + shape[1] if len(shape) == 2 else 2 * shape[0]
            high = math.sqrt(6.0 / fans)
            low = -high
        slack = 4 * float(np.finfo(values.dtype).eps) * max(abs(low), abs(high))  # the cast to the run's dtype
        if v.min() < low - slack or v.max() > high + slack:
            return [f"`{name}` ({init.name}) holds values in [{v.min():.6g}, {v.max():.6g}], outside the declared "
                    f"[{low:.6g}, {high:.6g}]"]
        mean, sd = (low + high) / 2, (high - low) / math.sqrt(12)
    elif init.name == "normal":
        mean, sd = float(opts.get("mean", 0.0)), float(opts.get("stddev", 1.0))
    else:
        return []
    if n < MIN_SAMPLE or sd == 0:
        return []
    out = []
    if abs(v.mean() - mean) > SIGMAS * sd / math.sqrt(n):
        out.append(f"`{name}` ({init.name}) has sample mean {v.mean():.4g} over {n} values, beyond {SIGMAS:g} "
                   f"standard errors ({sd / math.sqrt(n):.3g}) of the declared {mean:g}")
    if init.name == "normal" and abs(v.std(ddof=1) - sd) > SIGMAS * sd / math.sqrt(2 * (n - 1)):
        out.append(f"`{name}` (normal) has sample standard deviation {v.std(ddof=1):.4g} over {n} values, beyond "
                   f"{SIGMAS:g} standard errors ({sd / math.sqrt(2 * (n - 1)):.3g}) of the declared {sd:g}")
    return out


def _parameter_faults(plan: TrainingPlan) -> list[str]:
    s = plan.scenario
    out, n_in = [], s.input_dim
    declared: dict[str, tuple[tuple[int, ...], np.ndarray | None, Initializer | None]] = {}
    for i, layer in enumerate(s.layers):
        declared[f"layers.{i}.kernel"] = ((n_in, layer.units), layer.kernel, layer.kernel_initializer)
        if layer.use_bias:
            zeros = Initializer("zeros", {}) if layer.bias is None and layer.bias_initializer is None else None
            declared[f"layers.{i}.bias"] = ((layer.units,), layer.bias, layer.bias_initializer or zeros)
        n_in = layer.units
    if set(plan.initial_params) != set(declared):
        return [f"the initial parameters are {sorted(plan.initial_params)}, where the model declares "
                f"{sorted(declared)}"]
    for name, (shape, given, init) in declared.items():
        values = plan.initial_params[name]
        if values.shape != shape or values.dtype != np.dtype(plan.dtype):
            out.append(f"`{name}` is {values.dtype} of shape {values.shape}, where {plan.dtype} of shape {shape} "
                       "is declared")
        elif given is not None:
            if not np.array_equal(values, np.asarray(given).astype(plan.dtype)):
                out.append(f"`{name}` does not hold the values the file gives")
        elif init is not None:
            out += _draw_faults(name, init, values)
    return out


def _data_faults(plan: TrainingPlan) -> list[str]:
    X, y, dtype = plan.X, plan.y, np.dtype(plan.dtype)
    out = []
    if X.dtype != dtype or y.dtype != dtype:
        out.append(f"X is {X.dtype} and y {y.dtype} in a {plan.dtype} run")
    if X.ndim != 2 or X.shape[1] != plan.scenario.input_dim or y.shape[0] != X.shape[0]:
        out.append(f"X has shape {X.shape} and y {y.shape}, where (rows, input_dim {plan.scenario.input_dim}) and "
                   "as many rows of y are declared")
    return out


def plan_faults(plan: TrainingPlan) -> list[str]:
    """Every invariant of the module docstring that ``plan`` breaks, each "shared plan: ..."
    (empty: the plan is what the scenario declares, as far as these invariants see)."""
    found = _data_faults(plan) + _parameter_faults(plan)
    if plan.scenario.training is not None:
        found += _order_faults(plan) + _batch_faults(plan)
    return [f"{FAULT}{plan.dtype}: {text}" for text in found]


def plan_notes(plan: TrainingPlan) -> list[str]:
    """What the invariants could not check statistically: random draws of fewer than
    ``MIN_SAMPLE`` values (checked by their bounds only) and shuffles too short for the
    independence test."""
    s, out = plan.scenario, []
    for i, layer in enumerate(s.layers):
        for name, init in ((f"layers.{i}.kernel", layer.kernel_initializer),
                           (f"layers.{i}.bias", layer.bias_initializer)):
            values = plan.initial_params.get(name)
            if init is not None and values is not None and init.name in ("normal", "uniform", "glorot_uniform") \
                    and values.size < MIN_SAMPLE:
                how = "finite only" if init.name == "normal" else "by its bounds only"
                out.append(f"`{name}` ({init.name}): {values.size} values, too few for a statistical check "
                           f"(< {MIN_SAMPLE}); checked {how}")
    tr = s.training
    rows = plan.X.shape[0]
    if tr is not None and tr.shuffle and tr.epochs > 1 and not _distinct_epochs_expected(rows, tr.epochs):
        tested = ("tested only that not every epoch has one order" if _some_distinct_expected(rows, tr.epochs)
                  else "their independence is not tested")
        out.append(f"{rows} rows over {tr.epochs} epochs: two epochs in one order are too likely by chance; {tested}")
    return out
