"""A run's cache key: the SHA-256 of everything ``implementation.method(plan, *extra)`` depends on.

A run (``Adapter.run``) or a traced step (``Adapter.trace_step``) is a pure function of: the
implementation, the plan (the data, the initial weights, the batch order, the dtype) and what
the scenario says about the network and its training (``describe_plan``), the harness's own code,
and the environment that computes it: package versions, each framework's installed files, the
interpreter's start-up customisations, the numeric environment variables, the BLAS library and
its kernel and threads, the CPU (``harness.run.environment.fingerprint``). The key is a SHA-256
over all of them (``key``; ``stamp``: the format, the code and the environment, once per
process). Any change to a scenario, a package, a file of a framework, a ``sitecustomize.py``,
``OPENBLAS_CORETYPE`` or a line of ``harness/`` or ``reference/`` gives another key, so an entry
made elsewhere is never served. ``plan_from`` rebuilds the plan an entry was made from, so that
``nn-parity cache verify`` can make the run again.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from harness.run import environment
from harness.run.plan import TrainingPlan
from harness.spec.data import DataSpec
from harness.spec.scenario import LayerSpec, OptimizerSpec, Scenario, TrainingSpec
from harness.spec.tolerance import DEFAULT_TOLERANCES

FORMAT = "nn-parity-cache 2"  # the entries' format, part of every key
_SOURCES = (Path(__file__).resolve().parents[2] / "harness", Path(__file__).resolve().parents[2] / "reference")


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
    """The format, the harness's code and the environment (``environment.fingerprint``: versions,
    installed files, start-up customisations, numeric variables, BLAS kernel and threads, CPU),
    computed once per process."""
    if "stamp" not in _STAMP:
        _STAMP["stamp"] = f"{FORMAT}\n{_code_hash()}\n{environment.fingerprint()}"
    return _STAMP["stamp"]


def describe_plan(plan: TrainingPlan) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Everything ``plan`` gives an implementation, as JSON-able fields and named arrays: the
    network, the training, the dtype, the control setting, the step limit, the data, the initial
    parameters and the batch order (``plan_from`` rebuilds the plan from them)."""
    s, t = plan.scenario, plan.scenario.training
    fields = {
        "dtype": plan.dtype, "input_dim": s.input_dim, "keep_64_bit": s.keep_64_bit, "step_limit": plan.step_limit,
        "layers": [{"units": x.units, "activation": x.activation, "use_bias": x.use_bias, "axis": x.axis}
                   for x in s.layers],
        "training": None if t is None else {
            "loss": t.loss, "clip": t.clip, "epochs": t.epochs, "batch_size": t.batch_size, "shuffle": t.shuffle,
            "shuffle_seed": t.shuffle_seed, "early_stop_tol": t.early_stop_tol,
            "optimizer": {"name": t.optimizer.name, "learning_rate": t.optimizer.learning_rate,
                          "options": {k: t.optimizer.options[k] for k in sorted(t.optimizer.options)}}},
    }
    arrays = {"X": plan.X, "y": plan.y, "orders": plan.orders,
              "bounds": np.asarray(plan.bounds, dtype=np.int64).reshape(-1, 2),
              **{f"init {k}": v for k, v in plan.initial_params.items()}}
    return fields, arrays


def plan_from(fields: dict[str, Any], arrays: dict[str, np.ndarray], *, name: str = "cached") -> TrainingPlan:
    """The plan ``describe_plan`` described (its scenario holds what the implementations read)."""
    t = fields["training"]
    training = None if t is None else TrainingSpec(
        loss=t["loss"], clip=t["clip"], epochs=t["epochs"], batch_size=t["batch_size"], shuffle=t["shuffle"],
        shuffle_seed=t["shuffle_seed"], early_stop_tol=t["early_stop_tol"],
        optimizer=OptimizerSpec(name=t["optimizer"]["name"], learning_rate=t["optimizer"]["learning_rate"],
                                options=dict(t["optimizer"]["options"])))
    X, y = arrays["X"], arrays["y"]
    scenario = Scenario(name=name, title=name, path=Path(f"{name}.toml"), source="", description="",
                        data=DataSpec(X=X, y=y), input_dim=fields["input_dim"],
                        layers=tuple(LayerSpec(**layer) for layer in fields["layers"]), training=training,
                        tolerances=dict(DEFAULT_TOLERANCES), keep_64_bit=fields["keep_64_bit"])
    return TrainingPlan(scenario=scenario, dtype=fields["dtype"], X=X, y=y,
                        initial_params={k.removeprefix("init "): v for k, v in arrays.items() if k.startswith("init ")},
                        orders=arrays["orders"], bounds=tuple((int(a), int(b)) for a, b in arrays["bounds"]),
                        step_limit=fields["step_limit"])


def _key(implementation: str, method: str, fields: dict[str, Any], arrays: dict[str, np.ndarray],
         extra: tuple[Any, ...]) -> str:
    h = hashlib.sha256()
    text = json.dumps([implementation, method, list(extra), fields], sort_keys=True, allow_nan=True, default=repr)
    h.update(f"{stamp()}\n{text}\n".encode())
    for name, array in arrays.items():
        a = np.ascontiguousarray(array)
        h.update(f"{name} {a.dtype.str} {a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def key(implementation: str, method: str, plan: TrainingPlan, *extra: Any) -> str:
    """The SHA-256 of everything ``implementation.method(plan, *extra)`` depends on."""
    return _key(implementation, method, *describe_plan(plan), extra)
