"""Causes measured, each planted: a defect in ONE implementation (or in the plan every one shares)
must give the right suspect, step and stage and the named cause, confirmed by its measurement.

* the shared plan (``harness.judge.plan_checks``): one permutation reused every epoch, a wrong
  batch size, initial draws off their declaration: a harness fault, whatever the pairs say;
* a record one step late (Keras writing its parameters before ``apply_gradients``): named as such,
  never as an effective learning rate of 0;
* weight decay in torch: an extra term proportional to the weights, lambda measured;
* tanh's derivative evaluated at the wrong point in torch: reproduced by the reference's backprop
  with that derivative swapped in;
* the reference's MSE gradient without its factor 2 on a 2-element kernel: a constant factor found
  over steps 0..3 at the same parameters;
* the learning rate applied to the gradient before the step: the record's gradient scaled;
* a crash in the reference: named with its file, line and function.

keras and torch run in this process (``inline()``): a monkeypatch lives in one process.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from harness import pipeline
from harness.judge.causes import updates
from harness.judge.causes.evidence import Evidence
from harness.judge.compare import DISAGREE
from harness.judge.diagnosis import Diagnosis
from harness.judge.localisation import RUN_LOOP
from harness.judge.plan_checks import plan_faults, plan_notes
from harness.judge.result import ScenarioResult
from harness.pipeline import RUNS, diagnose, run_scenario
from harness.render.results_json import result_dict
from harness.render.sentences import verdict
from harness.run.adapters import adapter, keras_tf
from harness.run.adapters.workers import inline
from harness.run.plan import TrainingPlan, make_plan
from harness.spec.catalogue import resolve
from harness.spec.initializers import Initializer
from harness.spec.scenario import Scenario, load_scenarios
from reference import activations, layers, losses
from tests.on_first_use import torch

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
CATALOGUE = Path(__file__).resolve().parent.parent / "scenarios"


def scenario(name: str) -> Scenario:
    [s] = load_scenarios(SCENARIOS / f"{name}.toml")
    return s


# --- the shared plan ------------------------------------------------------------------

def _every_plan() -> list[TrainingPlan]:
    files = sorted(CATALOGUE.glob("*.toml")) + sorted((CATALOGUE / "keys").rglob("*.toml")) + sorted(
        SCENARIOS.glob("*.toml"))
    plans = []
    for f in files:
        try:
            found = load_scenarios(f)
        except Exception:  # an answer key, not a scenario file
            continue
        plans += [make_plan(s, dtype) for s in found for dtype in ("float64", "float32")]
    return plans


def test_the_plan_invariants_never_fire_on_the_catalogue() -> None:
    plans = _every_plan()
    assert len(plans) >= 100
    assert [f for p in plans for f in plan_faults(p)] == []


def test_what_the_plan_invariants_cannot_test_is_said() -> None:
    notes = plan_notes(make_plan(resolve("xor-perceptron"), "float64"))
    assert "`layers.1.bias` (normal): 1 values, too few for a statistical check (< 30); checked finite only" in notes
    notes = plan_notes(make_plan(resolve("minibatch-diverging"), "float64"))
    assert notes == ["12 rows over 1000 epochs: two epochs in one order are too likely by chance; tested only that "
                     "not every epoch has one order"]


def _reused_order(plan: TrainingPlan) -> TrainingPlan:
    return replace(plan, orders=np.stack([plan.orders[0]] * plan.orders.shape[0]))


def test_each_plan_invariant_fires_on_its_own_break() -> None:
    plan = make_plan(scenario("small-mlp"), "float64")
    assert plan_faults(plan) == []
    reused = plan_faults(_reused_order(plan))
    assert reused == ["shared plan: float64: every one of the 5 epochs has one row order, where shuffle = true "
                      "declares independent shuffles of the 64 rows (probability (1/64!)^4 by chance)"]
    orders = plan.orders.copy()
    orders[3] = orders[1]  # one epoch repeated
    [repeated] = plan_faults(replace(plan, orders=orders))
    assert "epochs 1 and 3 share one row order" in repeated
    orders = plan.orders.copy()
    orders[2, 5] = orders[2, 6]  # a row twice, one missing
    assert plan_faults(replace(plan, orders=orders)) == [
        "shared plan: float64: epoch 2's order is not a permutation of the 64 rows (1 rows missing, 1 repeated)"]
    bounds = tuple((s, min(s + 15, 64)) for s in range(0, 64, 15))
    [batches] = plan_faults(replace(plan, bounds=bounds))
    assert "where batch_size 16 on 64 rows declares 4 consecutive batches of 16 rows" in batches
    unshuffled = make_plan(scenario("tiny-linear"), "float64")
    assert plan_faults(replace(unshuffled, orders=np.array([[1, 0]]))) == [
        "shared plan: float64: the rows are reordered where shuffle = false declares their order in the data"]
    params = dict(plan.initial_params, **{"layers.0.bias": plan.initial_params["layers.0.bias"] + 1e-3})
    assert plan_faults(replace(plan, initial_params=params)) == [
        "shared plan: float64: `layers.0.bias` does not hold the values the file gives"]


def _drawn(init: Initializer, values: np.ndarray) -> list[str]:
    s = scenario("tiny-linear")
    layer = replace(s.layers[0], units=values.shape[1], kernel=None, kernel_initializer=init, use_bias=False, bias=None)
    plan = make_plan(replace(s, layers=(layer,)), "float64")
    return plan_faults(replace(plan, initial_params=dict(plan.initial_params, **{"layers.0.kernel": values})))


def test_initial_draws_are_checked_against_their_declaration(rng: np.random.Generator) -> None:
    assert _drawn(Initializer("zeros", {}), np.zeros((2, 200))) == []
    assert _drawn(Initializer("constant", {"value": 0.5}), np.full((2, 200), 0.5)) == []
    assert "is not all 0.5" in _drawn(Initializer("constant", {"value": 0.5}), np.full((2, 200), 0.25))[0]
    normal = Initializer("normal", {"seed": 1, "mean": 0.0, "stddev": 0.1})
    assert _drawn(normal, rng.normal(0, 0.1, (2, 200))) == []
    [std] = _drawn(normal, rng.normal(0, 1.0, (2, 200)))  # the stddev ignored: N(0, 1)
    assert "sample standard deviation" in std and "of the declared 0.1" in std
    [mean] = _drawn(normal, rng.normal(0.1, 0.1, (2, 200)))
    assert "sample mean" in mean
    assert _drawn(normal, rng.normal(0, 1.0, (2, 10))) == []  # too few for statistics: said by plan_notes
    glorot = Initializer("glorot_uniform", {"seed": 1})
    limit = np.sqrt(6 / 202)
    assert _drawn(glorot, rng.uniform(-limit, limit, (2, 200))) == []
    assert "outside the declared" in _drawn(glorot, rng.uniform(-2 * limit, 2 * limit, (2, 200)))[0]
    [off_centre] = _drawn(Initializer("uniform", {"seed": 1, "minval": -1.0, "maxval": 1.0}),
                          rng.uniform(0, 1, (2, 200)))
    assert "sample mean" in off_centre


@pytest.mark.slow
def test_one_permutation_reused_every_epoch_is_a_harness_fault() -> None:
    """The plan maker reuses epoch 0's permutation in every epoch: every implementation trains on
    the same wrong order, every pair agrees, and the run still fails, naming the shared plan."""
    original = make_plan
    with inline(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "make_plan", lambda s, dtype: _reused_order(original(s, dtype)))
        result = run_scenario(scenario("small-mlp"), dtypes=("float64",))
    assert all(c.state != DISAGREE for c in result.comparisons)  # the pairs cannot see it
    assert not result.ok and not result.agree
    fault = ("shared plan: float64: every one of the 5 epochs has one row order, where shuffle = true declares "
             "independent shuffles of the 64 rows (probability (1/64!)^4 by chance)")
    assert result.plan_faults == [fault]
    assert verdict(result) == f"HARNESS FAULT: {fault}"
    data = result_dict(result, diagnoses=diagnose(result))
    assert data["ok"] is False and data["plan_faults"] == [fault]
    assert f"Harness fault, {fault} (every implementation trained on it" in data["summary"]




# --- defects planted in one implementation, each with its cause -----------------------

def _record_written_before_the_update(mp: pytest.MonkeyPatch) -> None:
    """Keras' loop writes each step's parameters to the record before ``apply_gradients``: the
    record after step t holds the parameters before it (the training itself is untouched)."""
    original = keras_tf._compiled_loop

    def compiled_loop(m: Any, plan: TrainingPlan) -> Any:
        initial = [np.array(v.numpy()) for v in m.variables]
        steps, losses, grads, params, batches = original(m, plan)
        late = [np.concatenate([first[None], p[:-1]]) for first, p in zip(initial, params)]
        return steps, losses, grads, late, batches
    mp.setattr(keras_tf, "_compiled_loop", compiled_loop)


def _sgd_with_weight_decay(mp: pytest.MonkeyPatch) -> None:
    """torch.optim.SGD built with weight_decay 0.01 whatever it is asked for."""
    original = torch.optim.SGD.__init__

    def init(self: torch.optim.SGD, params: Any, **options: Any) -> None:
        original(self, params, **{**options, "weight_decay": 0.01})
    mp.setattr(torch.optim.SGD, "__init__", init)


def _tanh_derivative_at_output(mp: pytest.MonkeyPatch) -> None:
    class TanhDerivativeAtOutput(torch.autograd.Function):  # defined here: torch is imported on first use
        """tanh whose backward evaluates the derivative at the output: 1 - tanh(a)^2 for 1 - tanh(z)^2."""

        @staticmethod
        def forward(ctx: Any, z: torch.Tensor) -> torch.Tensor:
            a = torch.tanh(z)
            ctx.save_for_backward(a)
            return a

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            (a,) = ctx.saved_tensors
            return grad * (1 - torch.tanh(a) ** 2)

    mp.setattr(torch.nn.Tanh, "forward", lambda self, z: TanhDerivativeAtOutput.apply(z))


def _mse_gradient_without_2(mp: pytest.MonkeyPatch) -> None:
    def gradient(y_true: np.ndarray, y_pred: np.ndarray, *, clip: str = "none") -> np.ndarray:
        return (y_pred - y_true) / y_pred.dtype.type(y_pred.size)  # the factor 2 dropped
    mp.setitem(losses.LOSSES, "mse", replace(losses.LOSSES["mse"], gradient=gradient))


def _learning_rate_on_the_gradient(mp: pytest.MonkeyPatch) -> None:
    """torch.optim.SGD.step scales each gradient by the learning rate, then steps with it."""
    original = torch.optim.SGD.step

    def step(self: torch.optim.SGD, closure: Any = None) -> Any:
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    p.grad.mul_(group["lr"])
        return original(self)
    mp.setattr(torch.optim.SGD, "step", step)


def _two_element_kernel() -> Scenario:
    """tiny-linear without its bias (the kernel's 2 elements are every parameter), 4 full-batch steps."""
    s = scenario("tiny-linear")
    return replace(s, layers=(replace(s.layers[0], use_bias=False, bias=None),),
                   training=replace(s.training_spec, epochs=4))


@dataclass(frozen=True)
class Planted:
    id: str
    plant: Callable[[pytest.MonkeyPatch], None]
    scenario: Callable[[], Scenario]
    suspect: str
    step: int
    stage: str
    cause: str
    says: str


MLP = lambda: scenario("small-mlp")  # noqa: E731
PLANTED = [
    Planted("keras-record-one-step-late", _record_written_before_the_update, MLP, "keras", 0, RUN_LOOP,
            "record one step late", "wrote its parameters to the record before its update (the record one step late)"),
    Planted("torch-weight-decay", _sgd_with_weight_decay, MLP, "torch", 0, "updated layers.0.kernel",
            "weight decay", "with lambda = 0.01, the same for all"),
    Planted("torch-tanh-derivative-at-output", _tanh_derivative_at_output, MLP, "torch", 0,
            "gradient layers.0.kernel", "activation derivative",
            "layers.0's tanh derivative taken as 1 - tanh(a)^2 (the derivative evaluated at the output a = tanh(z)), "
            "not 1 - a^2"),
    Planted("numpy-mse-gradient-without-2-on-2-elements", _mse_gradient_without_2, _two_element_kernel, "numpy", 0,
            "gradient layers.0.kernel", "constant factor",
            "computed at the same parameters and batch at steps 0..3"),
    Planted("torch-learning-rate-on-the-gradient", _learning_rate_on_the_gradient, MLP, "torch", 0,
            "gradient layers.1.kernel", "rate applied to the gradient",
            "the declared learning rate 0.05 applied to the gradient itself before the step; its update / recorded "
            "gradient is 0.05, the declared rate, on the scaled record"),
]
PLANTED_BY_ID = {p.id: p for p in PLANTED}


@pytest.fixture(scope="module")
def planted(request: pytest.FixtureRequest) -> tuple[Planted, ScenarioResult, list[Diagnosis]]:
    case = PLANTED_BY_ID[request.param]
    with inline(), pytest.MonkeyPatch.context() as mp:
        case.plant(mp)
        result = run_scenario(case.scenario(), dtypes=("float64",))
        return case, result, [d for d in diagnose(result) if d.kind == "disagree"]


@pytest.mark.slow
@pytest.mark.parametrize("planted", list(PLANTED_BY_ID), indirect=True, scope="module")
def test_a_planted_defect_names_its_carrier_step_stage_and_cause(
        planted: tuple[Planted, ScenarioResult, list[Diagnosis]]) -> None:
    case, result, diagnoses = planted
    assert all(r.ok for r in result.runs.values()) and not result.ok
    assert {c.pair for c in result.comparisons if c.state == DISAGREE} == {
        f"{a}-{b}" for a, b in (("numpy", "keras"), ("numpy", "torch"), ("keras", "torch")) if case.suspect in (a, b)}
    assert diagnoses
    for d in diagnoses:
        assert d.suspect is not None
        assert (d.suspect.label, d.suspect.step, d.suspect.stage) == (case.suspect, case.step, case.stage)
        assert (d.step, d.stage) == (case.step, case.stage)
        assert d.cause_name == case.cause, d.confirmed_by.describe() if d.confirmed_by else None
        assert d.confirmed_by is not None and case.says in d.confirmed_by.describe(), d.confirmed_by.describe()
        assert getattr(d.confirmed_by, "side", None) in (case.suspect, None)


@pytest.mark.slow
def test_a_record_one_step_late_is_not_an_effective_learning_rate() -> None:
    """The premise of the effective learning rate (the record's update is the side's update at the
    step, as its replay of the step shows) fails for a record one step late: no rate is measured."""
    with inline(), pytest.MonkeyPatch.context() as mp:
        _record_written_before_the_update(mp)
        result = run_scenario(scenario("small-mlp"), dtypes=("float64",))
        traces = {label: adapter(label).trace_step(result.plans["float64"], 0) for label in ("numpy", "keras")}
    evidence = Evidence(a="numpy", b="keras", dtype="float64", step=0, stage=RUN_LOOP,
                        runs={x: result.runs[(x, "float64")] for x in traces},
                        scenarios={x: result.scenario for x in traces}, traces=traces, plan=result.plans["float64"],
                        tolerance=result.scenario.tolerances["float64"], run_floor=RUNS)
    assert updates.effective_learning_rate(evidence) is None
    without_premise = replace(evidence, traces={})  # not replayed: nothing confirms the record is the update
    assert updates.effective_learning_rate(without_premise) is None


def test_a_crash_in_the_reference_is_named_with_its_file_line_and_function() -> None:
    """tanh's backward replaced by its forward (called with three arguments): the reference
    crashes inside its dense layer's backward pass, and the run says where."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(activations.ACTIVATIONS, "tanh", replace(activations.ACTIVATIONS["tanh"], backward=activations.tanh))
        result = run_scenario(scenario("small-mlp"), frameworks=("numpy",), dtypes=("float64",))
    run = result.runs[("numpy", "float64")]
    line = next(n for n, text in enumerate(Path(layers.__file__).read_text().splitlines(), 1)
                if "delta = act.backward(cache.z, cache.a, grad_a)" in text)
    assert run.status == "crashed"
    assert run.message == ("TypeError: tanh() takes 1 positional argument but 3 were given "
                           f"(at reference/layers.py:{line} in Dense.backward)")
    assert verdict(result) == "CRASHED: numpy (float64)"
