"""How much memory a scenario's runs will need, estimated before anything is allocated.

A scenario file can ask for ``n = 10**9`` data points, ``units = 10**8`` or ``epochs = 10**12``;
the runner checks the estimate against a limit (default: the machine's physical memory;
``--max-memory``) and refuses with exit 2, naming the field that dominates and the estimate,
instead of allocating until the machine swaps or the process is killed. The estimate counts
what the harness keeps: the data in every dtype, and per run the recorded trajectory (loss,
every parameter and gradient at every step), the rows of every batch (one int64 per row per
epoch; full batches in order share one array) and every layer's outputs on the whole data set
before and after training; the frameworks' working memory comes on top of it.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import numpy as np

from harness.errors import BadInput
from harness.spec.data import data_rows, drawn_rows
from harness.spec.scenario import Scenario

_SIZE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[KMGT]?)i?B?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def machine_memory() -> int:
    """The machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def parse_size(text: str) -> int:
    """``"8G"``, ``"512M"``, ``"1.5GiB"`` or a number of bytes; ValueError otherwise."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"expected a size such as 8G, 512M or a number of bytes; received {text!r}")
    return int(float(match["number"]) * _UNITS[match["unit"].upper()])


def describe_size(n_bytes: float) -> str:
    for unit in ("T", "G", "M", "K"):
        if n_bytes >= _UNITS[unit]:
            return f"{n_bytes / _UNITS[unit]:.3g} {unit}iB"
    return f"{n_bytes:.0f} B"


@dataclass(frozen=True)
class Estimate:
    steps: int  # training steps of one run (0: forward-only)
    parts: dict[str, tuple[str, float]]  # what -> (the field that scales it, bytes)

    @property
    def total(self) -> float:
        return sum(n for _, n in self.parts.values())

    def dominant(self) -> tuple[str, str, float]:
        what, (field, n_bytes) = max(self.parts.items(), key=lambda item: item[1][1])
        return what, field, n_bytes


def estimate(scenario: Scenario, *, runs_per_dtype: int, dtypes: tuple[str, ...]) -> Estimate:
    """The memory the harness keeps for ``runs_per_dtype`` implementations in each of ``dtypes``."""
    rows = data_rows(scenario.data)
    outputs_per_row = scenario.layers[-1].units
    widest = max(range(len(scenario.layers)), key=lambda i: scenario.layers[i].units)
    params = sum(math.prod(shape) for shape in scenario.param_shapes().values())
    steps = scenario.max_steps
    item = sum(np.dtype(d).itemsize for d in dtypes)  # one copy of everything per dtype
    runs = runs_per_dtype
    counts = {key: value for key, value in (scenario.data.options or {}).items()
              if (key == "n" or key.startswith("n_")) and isinstance(value, int)}
    data_field = f"data.{max(counts, key=lambda key: counts[key])}" if counts else "data.X"  # the largest count
    parts: dict[str, tuple[str, float]] = {
        "the data": (data_field, drawn_rows(scenario.data) * (scenario.input_dim + outputs_per_row) * (8 + item)),
        "the parameters": (f"model.layers[{widest}].units", runs * params * item * 2),
        "the recorded trajectory": ("training.epochs", runs * steps * (2 * params + 1) * item),
        "every layer's outputs": (f"model.layers[{widest}].units" if scenario.layers[widest].units > rows
                                  else data_field,
                                  runs * 2 * rows * sum(layer.units for layer in scenario.layers) * item),
    }
    training = scenario.training
    if training is not None and (training.shuffle or (training.batch_size or rows) < rows):
        parts["the rows of every batch"] = ("training.epochs", runs * len(dtypes) * training.epochs * rows * 8)
    return Estimate(steps=steps, parts=parts)


def check_budget(scenario: Scenario, *, runs_per_dtype: int, dtypes: tuple[str, ...],
                 max_bytes: int | None = None) -> Estimate:
    """The estimate, or ``BadInput`` naming the dominant field when it exceeds ``max_bytes``
    (default: the machine's memory)."""
    limit = machine_memory() if max_bytes is None else max_bytes
    found = estimate(scenario, runs_per_dtype=runs_per_dtype, dtypes=dtypes)
    if found.total > limit:
        what, field, n_bytes = found.dominant()
        raise BadInput(scenario.path, field, f"a scenario whose runs fit in the memory limit of "
                       f"{describe_size(limit)} (--max-memory); it needs about {describe_size(found.total)}, "
                       f"{describe_size(n_bytes)} of it for {what} ({found.steps:,} steps per run)")
    return found
