"""Keep the power: realistic defects planted, one at a time, in ONE implementation.

Each defect is monkeypatched into the NumPy reference (``reference/*.py`` or its adapter), the
Keras adapter, the torch adapter, or the frameworks' own classes; a small real scenario then runs
in all three implementations in float64 and the harness must

* fail the run (``not result.ok``, a pair in state ``disagree``),
* name the implementation carrying the defect as the suspect (``Diagnosis.suspect``),
* give the first divergent step and the stage within it where the difference shows
  (``Diagnosis.step``, ``Diagnosis.stage``, ``Suspect.step``, ``Suspect.stage``),
* and name the cause, confirmed by an exact measurement of what the carrier computed
  (``harness.judge.causes``: the dtype of its tensors, its batches' rows, accumulated
  gradients, its effective learning rate, the activation or guard it applied, a constant factor,
  float32 values in a float64 run, an activation derivative reproduced with a known slip), or
  ``NO_CAUSE`` where no check can confirm one.

keras and torch run in this process for these tests (``inline()``), not in their workers: a
monkeypatch lives in one process.

A defect only in a run loop is invisible to the separate replay of the step (``trace_step``): the
harness then says that the carrier's replay does not reproduce its run and names the stage
``RUN_LOOP``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from harness.judge.compare import DISAGREE
from harness.judge.diagnosis import NO_CAUSE, Diagnosis
from harness.judge.localisation import RUN_LOOP
from harness.judge.result import ScenarioResult
from harness.pipeline import diagnose, run_scenario
from harness.run.adapters import keras_tf, torch_eager
from harness.run.adapters.numpy_reference import NumpyReference
from harness.run.adapters.torch_eager import TorchAdapter
from harness.run.adapters.workers import inline
from harness.run.plan import TrainingPlan
from harness.spec.scenario import Scenario, load_scenarios
from reference import activations, losses
from tests.on_first_use import torch

pytestmark = pytest.mark.slow  # every case runs Keras and torch

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
FRAMEWORKS = ("numpy", "keras", "torch")


def scenario(name: str) -> Scenario:
    [s] = load_scenarios(SCENARIOS / f"{name}.toml")
    return s


Plant = Callable[[pytest.MonkeyPatch], None]


@dataclass(frozen=True)
class Defect:
    id: str
    where: str  # what is patched
    scenario: str
    suspect: str
    step: int
    stage: str
    cause: str = NO_CAUSE
    says: str = ""  # a phrase the confirming measurement must contain


# --- the NumPy reference ----------------------------------------------------------

def _sigmoid_grad_as_tanh(z: np.ndarray, a: np.ndarray, grad_a: np.ndarray) -> np.ndarray:
    return grad_a * (1 - a * a)  # copy-pasted from tanh: S'(z) is a (1 - a)


def _tanh_grad_missing_square(z: np.ndarray, a: np.ndarray, grad_a: np.ndarray) -> np.ndarray:
    return grad_a * (1 - a)  # should be 1 - a * a


def _mse_grad_without_2(y_true: np.ndarray, y_pred: np.ndarray, *, clip: str = "none") -> np.ndarray:
    return (y_pred - y_true) / y_pred.dtype.type(y_pred.size)  # the factor 2 dropped


def plant_reference_sigmoid_derivative(mp: pytest.MonkeyPatch) -> None:
    mp.setitem(activations.ACTIVATIONS, "sigmoid",
               replace(activations.ACTIVATIONS["sigmoid"], backward=_sigmoid_grad_as_tanh))


def plant_reference_tanh_derivative(mp: pytest.MonkeyPatch) -> None:
    mp.setitem(activations.ACTIVATIONS, "tanh",
               replace(activations.ACTIVATIONS["tanh"], backward=_tanh_grad_missing_square))


def plant_reference_mse_gradient(mp: pytest.MonkeyPatch) -> None:
    mp.setitem(losses.LOSSES, "mse", replace(losses.LOSSES["mse"], gradient=_mse_grad_without_2))


def _rotated_batch_indices(original: Callable[[TrainingPlan, int], np.ndarray]
                           ) -> Callable[[TrainingPlan, int], np.ndarray]:
    """Each epoch skips its first batch and trains on it last (an off-by-one in the batch loop)."""
    def batch_indices(self: TrainingPlan, step: int) -> np.ndarray:
        epoch, batch = divmod(step, self.batches_per_epoch)
        return original(self, epoch * self.batches_per_epoch + (batch + 1) % self.batches_per_epoch)
    return batch_indices


def _with_rotated_batches(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` of the reference, run with the off-by-one batch order (only while it runs)."""
    original = TrainingPlan.batch_indices

    def wrapped(self: NumpyReference, plan: TrainingPlan, *args: Any) -> Any:
        with pytest.MonkeyPatch.context() as inner:
            inner.setattr(TrainingPlan, "batch_indices", _rotated_batch_indices(original))
            return method(self, plan, *args)
    return wrapped


def plant_reference_batch_order_in_run(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(NumpyReference, "run", _with_rotated_batches(NumpyReference.run))


def plant_reference_batch_order_in_run_and_trace(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(NumpyReference, "run", _with_rotated_batches(NumpyReference.run))
    mp.setattr(NumpyReference, "trace_step", _with_rotated_batches(NumpyReference.trace_step))


def _dropping_a_row_of_partial_batches(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` of an adapter, run with the last row of every partial batch dropped."""
    original = TrainingPlan.batch_indices

    def batch_indices(self: TrainingPlan, step: int) -> np.ndarray:
        idx = original(self, step)
        start, end = self.bounds[step % self.batches_per_epoch]
        return idx[:-1] if end - start < self.bounds[0][1] - self.bounds[0][0] else idx

    def wrapped(self: Any, plan: TrainingPlan, *args: Any) -> Any:
        with pytest.MonkeyPatch.context() as inner:
            inner.setattr(TrainingPlan, "batch_indices", batch_indices)
            return method(self, plan, *args)
    return wrapped


def plant_torch_partial_batch_short(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(TorchAdapter, "run", _dropping_a_row_of_partial_batches(TorchAdapter.run))


def _in_float32(method: Callable[..., Any]) -> Callable[..., Any]:
    """The reference handed the data and initial weights as float32 (a float64 run silently
    computed in single precision: every array it then makes is float32)."""
    def wrapped(self: NumpyReference, plan: TrainingPlan, *args: Any) -> Any:
        f32 = replace(plan, X=plan.X.astype(np.float32), y=plan.y.astype(np.float32),
                      initial_params={k: v.astype(np.float32) for k, v in plan.initial_params.items()})
        return method(self, f32, *args)
    return wrapped


def plant_reference_float32(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(NumpyReference, "run", _in_float32(NumpyReference.run))
    mp.setattr(NumpyReference, "trace_step", _in_float32(NumpyReference.trace_step))


def _in_float64(method: Callable[..., Any]) -> Callable[..., Any]:
    """A float32 run handed float64 data and weights (and a float64 model): computed in double."""
    def wrapped(self: Any, plan: TrainingPlan, *args: Any) -> Any:
        f64 = replace(plan, X=plan.X.astype(np.float64), y=plan.y.astype(np.float64),
                      initial_params={k: v.astype(np.float64) for k, v in plan.initial_params.items()})
        return method(self, f64, *args)
    return wrapped


def plant_torch_float32_run_in_float64(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(torch_eager, "_dtype", lambda torch_module, dtype: torch_module.float64)
    mp.setattr(TorchAdapter, "run", _in_float64(TorchAdapter.run))
    mp.setattr(TorchAdapter, "trace_step", _in_float64(TorchAdapter.trace_step))


# --- the Keras adapter and Keras' own classes ---------------------------------------

def plant_keras_kernel_reshaped(mp: pytest.MonkeyPatch) -> None:
    """The adapter loads each kernel with reshape where a transpose-and-back was meant."""
    def set_params(dense_layers: list[Any], params: dict[str, np.ndarray]) -> None:
        scrambled = {k: (np.ascontiguousarray(v.T).reshape(v.shape) if k.endswith("kernel") else v)
                     for k, v in params.items()}
        original(dense_layers, scrambled)
    original = keras_tf.set_params
    mp.setattr(keras_tf, "set_params", set_params)


def plant_keras_dense_call_transposed(mp: pytest.MonkeyPatch) -> None:
    """``keras.layers.Dense.call`` reads its kernel transposed (reshaped back to its shape)."""
    _, keras = keras_tf.import_keras()
    ops = keras.ops

    def call(self: Any, inputs: Any, training: Any = None) -> Any:
        kernel = ops.reshape(ops.transpose(self.kernel), self.kernel.shape)
        x = ops.matmul(inputs, kernel)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return x if self.activation is None else self.activation(x)
    mp.setattr(keras.layers.Dense, "call", call)


def plant_keras_activation_swapped(mp: pytest.MonkeyPatch) -> None:
    """The adapter's model builder maps ``tanh`` to Keras' ``sigmoid``."""
    original = keras_tf.build_model

    def build_model(keras: Any, s: Scenario, dtype: str) -> Any:
        swapped = tuple(replace(layer, activation="sigmoid") if layer.activation == "tanh" else layer
                        for layer in s.layers)
        return original(keras, replace(s, layers=swapped), dtype)
    mp.setattr(keras_tf, "build_model", build_model)


def plant_keras_learning_rate_default(mp: pytest.MonkeyPatch) -> None:
    """The adapter's ``build_optimizer`` drops the scenario's learning rate: Keras' SGD default 0.01."""
    original = keras_tf.build_optimizer

    def build_optimizer(keras: Any, spec: Any, *, file: Any = "<scenario>") -> Any:
        return original(keras, replace(spec, learning_rate=0.01), file=file)
    mp.setattr(keras_tf, "build_optimizer", build_optimizer)


def plant_keras_clip_ignored(mp: pytest.MonkeyPatch) -> None:
    """The adapter's ``build_loss`` drops the declared cross-entropy guard."""
    original = keras_tf.build_loss
    mp.setattr(keras_tf, "build_loss", lambda keras, loss, clip: original(keras, loss, "none"))


# --- the torch adapter and torch's own classes --------------------------------------

def _tanh_off(self: torch.nn.Tanh, x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x) * (1 + 1e-6)


def _sigmoid_off(self: torch.nn.Sigmoid, x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x) * (1 + 1e-6)


def _linear_in_float32(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    bias = None if self.bias is None else self.bias.float()
    return torch.nn.functional.linear(x.float(), self.weight.float(), bias).to(x.dtype)


def _zero_grad_noop(self: torch.optim.Optimizer, set_to_none: bool = True) -> None:
    return None


def plant_torch_tanh(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(torch.nn.Tanh, "forward", _tanh_off)


def plant_torch_sigmoid(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(torch.nn.Sigmoid, "forward", _sigmoid_off)


def plant_torch_sgd_twice(mp: pytest.MonkeyPatch) -> None:
    original = torch.optim.SGD.step

    def step(self: torch.optim.SGD, closure: Any = None) -> Any:
        original(self)
        return original(self)
    mp.setattr(torch.optim.SGD, "step", step)


def plant_torch_no_zero_grad(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(torch.optim.Optimizer, "zero_grad", _zero_grad_noop)


def plant_torch_linear_float32(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(torch.nn.Linear, "forward", _linear_in_float32)


def plant_torch_learning_rate_float32(mp: pytest.MonkeyPatch) -> None:
    """The adapter's ``build_optimizer`` reads the learning rate through a float32 (0.05 -> 0.0500000007)."""
    original = torch_eager.build_optimizer

    def build_optimizer(torch_module: Any, spec: Any, parameters: Any, *, file: Any = "<scenario>") -> Any:
        lr = float(np.float32(spec.learning_rate))
        return original(torch_module, replace(spec, learning_rate=lr), parameters, file=file)
    mp.setattr(torch_eager, "build_optimizer", build_optimizer)


# --- the table --------------------------------------------------------------------

MLP, BCE = "small-mlp", "saturated-bce"
G0, UPDATED = "gradient layers.0.kernel", "updated layers.0.kernel"

CASES: list[tuple[Defect, Plant]] = [
    (Defect("numpy-sigmoid-derivative", "reference.activations.ACTIVATIONS['sigmoid'].backward", BCE,
            "numpy", 0, G0, "activation derivative", "layers.0's sigmoid derivative taken as 1 - a^2 (tanh's)"),
     plant_reference_sigmoid_derivative),
    (Defect("numpy-tanh-derivative", "reference.activations.ACTIVATIONS['tanh'].backward", MLP,
            "numpy", 0, G0, "activation derivative", "layers.0's tanh derivative taken as 1 - a (the square dropped)"),
     plant_reference_tanh_derivative),
    (Defect("numpy-mse-gradient-without-2", "reference.losses.LOSSES['mse'].gradient", MLP,
            "numpy", 0, "gradient layers.1.kernel", "constant factor", "of numpy is 0.5 x"),
     plant_reference_mse_gradient),
    # only in the run loop: the replay picks the right batch, so the stage is the run loop itself
    (Defect("numpy-batch-order-run-only", "TrainingPlan.batch_indices inside NumpyReference.run", MLP,
            "numpy", 0, RUN_LOOP, "batch contents", "the plan's batch of step 1: batches reordered"),
     plant_reference_batch_order_in_run),
    (Defect("numpy-batch-order", "TrainingPlan.batch_indices inside NumpyReference.run and trace_step", MLP,
            "numpy", 0, "output layers.0", "batch contents", "batches reordered within epoch 0"),
     plant_reference_batch_order_in_run_and_trace),
    (Defect("numpy-float32", "NumpyReference.run/trace_step given float32 data and weights", MLP,
            "numpy", 0, "params layers.0.kernel", "computed in another dtype", "its parameters in float32"),
     plant_reference_float32),
    (Defect("torch-partial-batch-short", "TrainingPlan.batch_indices inside TorchAdapter.run", "tiny-mlp",
            "torch", 2, RUN_LOOP, "batch contents", "dropped"), plant_torch_partial_batch_short),
    (Defect("keras-kernel-reshaped", "harness.run.adapters.keras_tf.set_params", MLP,
            "keras", 0, "params layers.0.kernel", "initial parameters", "a reshape where a transpose was meant"),
     plant_keras_kernel_reshaped),
    (Defect("keras-dense-call-transposed", "keras.layers.Dense.call", MLP,
            "keras", 0, "output layers.0", "kernel layout", "a reshape where a transpose was meant"),
     plant_keras_dense_call_transposed),
    (Defect("keras-activation-swapped", "harness.run.adapters.keras_tf.build_model", MLP,
            "keras", 0, "output layers.0", "activation applied", "applied sigmoid where tanh is declared"),
     plant_keras_activation_swapped),
    (Defect("keras-learning-rate-default", "harness.run.adapters.keras_tf.build_optimizer", MLP,
            "keras", 0, UPDATED, "effective learning rate", "effective learning rate 0.01 "),
     plant_keras_learning_rate_default),
    (Defect("keras-clip-ignored", "harness.run.adapters.keras_tf.build_loss", "saturated-bce-clipped",
            "keras", 0, "loss", "cross-entropy guard applied", "where clip 'keras' is declared"),
     plant_keras_clip_ignored),
    (Defect("torch-tanh-off-1e-6", "torch.nn.Tanh.forward", MLP,
            "torch", 0, "output layers.0", "constant factor", "x torch's"), plant_torch_tanh),
    (Defect("torch-sigmoid-off-1e-6", "torch.nn.Sigmoid.forward", BCE,
            "torch", 0, "output layers.0", "constant factor", "x torch's"), plant_torch_sigmoid),
    (Defect("torch-sgd-step-twice", "torch.optim.SGD.step", MLP,
            "torch", 0, UPDATED, "effective learning rate", "(2 x)"), plant_torch_sgd_twice),
    (Defect("torch-no-zero-grad", "torch.optim.Optimizer.zero_grad", MLP,
            "torch", 1, "gradient layers.1.kernel", "accumulated gradients", "gradients accumulate across steps"),
     plant_torch_no_zero_grad),
    (Defect("torch-linear-in-float32", "torch.nn.Linear.forward", MLP,
            "torch", 0, "output layers.0", "computed in float32", "holds only exact float32 numbers"),
     plant_torch_linear_float32),
    (Defect("torch-learning-rate-via-float32", "harness.run.adapters.torch_eager.build_optimizer", MLP,
            "torch", 0, UPDATED, "effective learning rate", "the declared rate rounded to float32"),
     plant_torch_learning_rate_float32),
]

Judged = tuple[ScenarioResult, list[Diagnosis]]
CASES_BY_ID = {defect.id: (defect, plant) for defect, plant in CASES}


@pytest.fixture(scope="module")
def judged(request: pytest.FixtureRequest) -> tuple[Defect, Judged]:
    """The scenario run with the defect ``request.param`` planted, and its diagnoses (made under the
    same patch: the replayed steps carry the defect too); once per defect, every patch undone."""
    defect, plant = CASES_BY_ID[request.param]
    with inline(), pytest.MonkeyPatch.context() as mp:  # keras and torch in this process: the patch reaches them
        plant(mp)
        result = run_scenario(scenario(defect.scenario), dtypes=("float64",))
        return defect, (result, [d for d in diagnose(result) if d.kind == "disagree"])


DEFECTS = list(CASES_BY_ID)


@pytest.mark.parametrize("name", [MLP, BCE, "tiny-mlp", "saturated-bce-clipped"])
def test_the_unplanted_scenarios_agree(name: str) -> None:
    """The baseline: without a defect, every pair agrees (so each failure below is the defect's)."""
    with inline():
        result = run_scenario(scenario(name), dtypes=("float64",))
    assert result.ok and all(c.state != DISAGREE for c in result.comparisons)


@pytest.mark.parametrize("judged", DEFECTS, indirect=True, scope="module")
def test_a_planted_defect_fails_the_run_and_names_its_carrier(judged: tuple[Defect, Judged]) -> None:
    defect, (result, diagnoses) = judged
    assert all(result.runs[(fw, "float64")].ok for fw in FRAMEWORKS), "a planted defect must not crash a run"
    assert not result.ok
    # exactly the two pairs with the carrier disagree; the other two implementations agree
    assert {c.pair for c in result.comparisons if c.state == DISAGREE} == {
        f"{a}-{b}" for a, b in (("numpy", "keras"), ("numpy", "torch"), ("keras", "torch"))
        if defect.suspect in (a, b)}
    assert sorted(d.comparison.pair for d in diagnoses) == sorted(
        c.pair for c in result.comparisons if c.state == DISAGREE)
    for d in diagnoses:
        assert d.suspect is not None
        assert (d.suspect.label, d.suspect.step, d.step) == (defect.suspect, defect.step, defect.step)
        assert d.cause_name == defect.cause
        if defect.cause != NO_CAUSE:
            assert d.confirmed_by is not None and defect.says in d.confirmed_by.describe()
            assert getattr(d.confirmed_by, "side", defect.suspect) in (defect.suspect, None)


@pytest.mark.parametrize("judged", DEFECTS, indirect=True, scope="module")
def test_a_planted_defect_is_localised_where_it_acts(judged: tuple[Defect, Judged]) -> None:
    defect, (_, diagnoses) = judged
    assert diagnoses
    for d in diagnoses:
        assert d.suspect is not None
        assert (d.stage, d.suspect.stage) == (defect.stage, defect.stage)
        if defect.stage == RUN_LOOP:  # the replay of the carrier does not reproduce its run: said so
            assert list(d.localisation.replay_mismatches) == [defect.suspect]
            assert "does not reproduce its run" in d.localisation.describe()
        else:
            assert d.localisation.first_beyond is not None and not d.localisation.replay_mismatches


def test_a_float32_run_computed_in_float64_fails_the_run_even_within_the_tolerance() -> None:
    """A float32 run computed in float64 can agree with the float32 runs within their tolerance;
    it is still not a float32 run: the result fails and names the run and what it computed in."""
    with inline(), pytest.MonkeyPatch.context() as mp:
        plant_torch_float32_run_in_float64(mp)
        result = run_scenario(scenario(MLP), dtypes=("float32",))
        diagnoses = diagnose(result)
    assert result.runs[("torch", "float32")].computed_dtypes["parameters"] == "float64"
    assert not result.ok
    assert result.dtype_faults == ["torch (float32) computed its parameters in float64, loss in float64, "
                                   "gradients in float64"]
    for d in diagnoses:  # a pair that does diverge names the dtype, never "float32 rounding growth"
        if "torch" in (d.comparison.a, d.comparison.b):
            assert d.cause_name == "computed in another dtype"
