"""Keras on JAX keeps the executables it compiled (``keras_jax._executable``), keyed by the lowered
program and its constants: a model built again after the worker dropped it (a traced step made after
the rest of the catalogue's runs) finds its loop already compiled and gives the same numbers, bit for
bit; a loop that differs only in one constant (the early stop's tolerance, a literal in the program)
gets its own executable, or it would stop where the other one does.

Keras on JAX runs in a process of its own (``keras_backend_model.import_keras_on``): the checks run in
a fresh interpreter, which reports what it found.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # Keras on JAX in a process of its own, four loops compiled

SCRIPT = """
import pickle, sys
from dataclasses import replace
from harness.run.adapters import keras_jax, keras_model
from harness.run.adapters.keras_backends import ADAPTERS, import_keras_on
from harness.run.plan import make_plan
from harness.spec.catalogue import resolve

import_keras_on("jax")
jx = ADAPTERS["keras@jax"]
a = resolve("minibatch-regression")
b = replace(a, name="minibatch-regression-loose-stop",
            training=replace(a.training, early_stop_tol=a.training.early_stop_tol * 1e4))
pa, pb = make_plan(a, "float64"), make_plan(b, "float64")
out = {"a": jx.run(pa), "a trace": jx.trace_step(pa, 2), "compiled": len(keras_jax._EXECUTABLES)}
keras_model._BUILT.clear()  # the model dropped, as after the rest of the catalogue's runs
out["a trace rebuilt"] = jx.trace_step(pa, 2)
out["compiled after the rebuild"] = len(keras_jax._EXECUTABLES)
out["b"] = jx.run(pb)  # the same kept model as a, another loop
out["compiled after b"] = len(keras_jax._EXECUTABLES)
keras_model._BUILT.clear()
keras_jax._EXECUTABLES.clear()
out["b alone"] = jx.run(pb)
with open(sys.argv[1], "wb") as f:
    pickle.dump(out, f)
"""


@pytest.fixture(scope="module")
def found(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("keras-jax") / "found.pickle"
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], capture_output=True, text=True, env=env,
                          timeout=600, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    with open(path, "rb") as f:
        return pickle.load(f)


def _same(x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> bool:
    return x.keys() == y.keys() and all(np.asarray(x[k]).tobytes() == np.asarray(y[k]).tobytes() for k in x)


def test_a_model_built_again_finds_its_loop_compiled_and_traces_the_same_step(found):
    assert found["compiled"] == 1
    assert found["compiled after the rebuild"] == 1  # no second compile of the same program
    trace, run = found["a trace rebuilt"], found["a"]
    assert _same(trace, found["a trace"])
    # the trace is the run's own step 2
    assert trace["loss"].tobytes() == run.losses[2].tobytes()
    assert all(trace[f"updated {k}"].tobytes() == v[2].tobytes() for k, v in run.params.items())


def test_a_loop_that_differs_in_one_constant_is_compiled_for_itself(found):
    a, b, alone = found["a"], found["b"], found["b alone"]
    assert found["compiled after b"] == 2
    assert b.stopped_early_at is not None and b.stopped_early_at < a.stopped_early_at
    assert b.stopped_early_at == alone.stopped_early_at
    assert b.losses.tobytes() == alone.losses.tobytes()
    assert _same(b.params, alone.params) and _same(b.grads, alone.grads)
