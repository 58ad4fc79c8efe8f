"""A cache of runs, keyed by the content of everything a run depends on.

A run (``Adapter.run``) or a traced step (``Adapter.trace_step``) is a pure function of: the
implementation, the plan (the data, the initial weights, the batch order, the dtype) and what
the scenario says about the network and its training, the versions of the packages that compute
it, and the harness's own code. The key is a SHA-256 over all of them (``key``); the value is the
pickled result. Any change to a scenario, a package or a line of ``harness/`` or ``reference/``
gives another key, so a stale entry can never be served; only finished, ``ok`` runs are stored.
The report's figures are kept here too (``harness.render.plots.drawn``), keyed by the same stamp
and every number they show.

The commands use the folder ``.nn-parity-cache/`` in the working directory (or ``$NN_PARITY_CACHE``;
``--cache DIR`` elsewhere, ``--no-cache`` to bypass it); it can be deleted at any time. Library calls (the pytest
plugin, ``run_scenario`` from Python) use no cache unless ``use_cache`` sets one; runs made under
``workers.inline()`` (a test that monkeypatched a framework) never read or write it.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from harness.run.plan import TrainingPlan

DEFAULT_FOLDER = os.environ.get("NN_PARITY_CACHE", ".nn-parity-cache")  # the commands' default
FORMAT = "nn-parity-cache 1"
PACKAGES = ("numpy", "tensorflow-cpu", "tensorflow", "keras", "torch", "jax", "jaxlib", "matplotlib")
_SOURCES = (Path(__file__).resolve().parents[2] / "harness", Path(__file__).resolve().parents[2] / "reference")


def _versions() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} absent")
    return f"python {sys.version.split()[0]}; " + "; ".join(found)


def _code_hash() -> str:
    """A hash of every ``.py`` file of the harness and the reference (their paths and bytes)."""
    h = hashlib.sha256()
    for root in _SOURCES:
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root.parent)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


_STAMP: dict[str, str] = {}


def stamp() -> str:
    """The versions and the code hash, computed once per process."""
    if "stamp" not in _STAMP:
        _STAMP["stamp"] = f"{FORMAT}\n{_versions()}\n{_code_hash()}"
    return _STAMP["stamp"]


def _scenario_part(plan: TrainingPlan) -> str:
    """What the scenario says that the plan's arrays do not: the layers and the training."""
    s = plan.scenario
    layers = [(layer.units, layer.activation, layer.use_bias, layer.axis) for layer in s.layers]
    t = s.training
    training = None if t is None else (t.loss, t.clip, t.optimizer.name, repr(t.optimizer.learning_rate),
                                       sorted((k, repr(v)) for k, v in t.optimizer.options.items()), t.epochs,
                                       t.batch_size, t.shuffle, t.shuffle_seed, repr(t.early_stop_tol))
    return repr((s.input_dim, layers, training, s.keep_64_bit))


def key(implementation: str, method: str, plan: TrainingPlan, *extra: Any) -> str:
    """The SHA-256 of everything ``implementation.method(plan, *extra)`` depends on."""
    h = hashlib.sha256()
    h.update(f"{stamp()}\n{implementation}\n{method}\n{plan.dtype}\n{extra!r}\n{_scenario_part(plan)}\n".encode())
    arrays = {"X": plan.X, "y": plan.y, "orders": plan.orders,
              "bounds": np.asarray(plan.bounds, dtype=np.int64).reshape(-1, 2),
              **{f"init {k}": v for k, v in sorted(plan.initial_params.items())}}
    for name, array in arrays.items():
        a = np.ascontiguousarray(array)
        h.update(f"{name} {a.dtype.str} {a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class RunCache:
    """Pickled results in ``folder``, one file per key (written atomically)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def _path(self, k: str) -> Path:
        return self.folder / k[:2] / f"{k}.pickle"

    def get(self, k: str) -> Any | None:
        path = self._path(k)
        try:
            with open(path, "rb") as f:
                return pickle.load(f)
        except FileNotFoundError:
            return None
        except Exception:  # a truncated or foreign file: not an entry; forget it
            with contextlib.suppress(OSError):
                path.unlink()
            return None

    def put(self, k: str, value: Any) -> None:
        path = self._path(k)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as f:
                pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise


_CURRENT: dict[str, RunCache | None] = {"cache": None}


def current() -> RunCache | None:
    return _CURRENT["cache"]


@contextlib.contextmanager
def use_cache(folder: str | Path | None) -> Iterator[RunCache | None]:
    """Runs made while the context lasts read and write the cache in ``folder`` (None: none)."""
    previous = _CURRENT["cache"]
    _CURRENT["cache"] = None if folder is None else RunCache(folder)
    try:
        yield _CURRENT["cache"]
    finally:
        _CURRENT["cache"] = previous
