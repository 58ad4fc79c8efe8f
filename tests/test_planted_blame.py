"""Blame the right side: defects planted, one at a time, where the diagnosis used to say something false.

* A defect in ONE optimizer convention of the NumPy reference (Keras-convention Adam with ``t + 1``
  in its bias correction, torch-convention Adam with epsilon inside the square root, Keras-convention
  SGD momentum with the wrong sign): the reference in that convention is the suspect, named by its
  check against the convention's update rule computed independently (``harness.judge.textbook``);
  no pair is "differ, explained" by the convention, and no control run that confirms or is tried
  for the convention runs the reference against itself. When that check cannot reach the
  difference, the answer is an honest "no majority within the Keras convention", naming what
  would break the tie.
* torch computing its float32 run in float64: exit 1 is never beside "agree": the verdict line,
  the JSON's ``state``, the summary and the pytest plugin's item all say ``disagree`` and why.
* The reference's early-stop test moved after its update: the first divergence is the step only
  one side made, at the stage "the early stop", saying which side stopped when and by which rule.

keras and torch run in this process (``inline()``): a monkeypatch lives in one process.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest

from harness.judge import textbook
from harness.judge.compare import DISAGREE, EXPLAINED
from harness.judge.controls import ControlRun
from harness.judge.diagnosis import NO_CAUSE, Diagnosis
from harness.judge.localisation import EARLY_STOP
from harness.judge.result import ScenarioResult
from harness.pipeline import diagnose, run_scenario
from harness.render.results_json import result_dict
from harness.render.sentences import lead_paragraph, summary_paragraph, verdict_line
from harness.run.adapters import numpy_reference
from harness.run.adapters.workers import inline
from harness.run.labels import framework_of
from harness.run.trajectory import should_stop
from harness.spec.catalogue import resolve
from harness.testing import failure_text
from reference import optimizers
from reference.optimizers import _cast
from tests.test_planted_defects import plant_torch_float32_run_in_float64, scenario

pytestmark = pytest.mark.slow  # every case runs Keras and torch

Plant = Callable[[pytest.MonkeyPatch], None]
Judged = tuple[ScenarioResult, list[Diagnosis]]


def judged(name: str, plant: Plant, *, dtype: str = "float64") -> Judged:
    """The scenario (a catalogue name or a tests/scenarios file) run with the defect planted, and
    its diagnoses, made under the same patch."""
    with inline(), pytest.MonkeyPatch.context() as mp:
        plant(mp)
        result = run_scenario(resolve(name) if "/" not in name else scenario(name.split("/")[1]), dtypes=(dtype,))
        return result, diagnose(result)


def controls(d: Diagnosis) -> Iterator[ControlRun]:
    """Every control run of a diagnosis (tried or confirming), with its further pairs."""
    todo = list(d.controls) + ([d.confirmed_by] if isinstance(d.confirmed_by, ControlRun) else [])
    while todo:
        run = todo.pop()
        yield run
        todo += run.also


def assert_no_control_runs_the_code_it_checks(diagnoses: list[Diagnosis]) -> None:
    """No control of a convention compares the reference with the reference: re-running the
    reference in the other convention runs the other side's own code, so it cannot fail."""
    for d in diagnoses:
        for run in controls(d):
            frameworks = run.control.frameworks or (d.comparison.a, d.comparison.b)
            assert {framework_of(f) for f in frameworks} != {"numpy"}, run.describe()


# --- the reference's optimizer conventions --------------------------------------------

def _keras_adam_t_plus_1(self: optimizers.Adam, p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray,
                         name: str) -> None:
    """Keras-convention Adam with ``t + 1`` in its bias correction."""
    dtype = p.dtype.type
    t, lr, eps = dtype(self.t + 1), dtype(self.learning_rate), dtype(self.epsilon)
    alpha = (lr * np.sqrt(1 - _cast(self.beta_2, dtype, self.convention) ** t)
             / (1 - _cast(self.beta_1, dtype, self.convention) ** t))
    m += (g - m) * dtype(1 - self.beta_1)
    v += (g * g - v) * dtype(1 - self.beta_2)
    if self.amsgrad:
        v_max = self.v_max.setdefault(name, np.zeros_like(p))
        np.maximum(v_max, v, out=v_max)
        v = v_max
    p -= (m * alpha) / (np.sqrt(v) + eps)


def _torch_adam_eps_inside_sqrt(self: optimizers.Adam, p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray,
                                name: str) -> None:
    """torch-convention Adam with epsilon inside the square root (sqrt(v / bc2 + eps))."""
    dtype = p.dtype.type
    m[...] = m + dtype(1 - self.beta_1) * (g - m)
    v[...] = v * dtype(self.beta_2) + dtype(1 - self.beta_2) * g * g
    bias_correction1, bias_correction2 = 1 - self.beta_1 ** self.t, 1 - self.beta_2 ** self.t
    if self.amsgrad:
        v_max = self.v_max.setdefault(name, np.zeros_like(p))
        np.maximum(v_max, v, out=v_max)
        v = v_max
    p += dtype(-self.learning_rate / bias_correction1) * m / np.sqrt(v / dtype(bias_correction2) + dtype(self.epsilon))


def _sgd_keras_momentum_wrong_sign(original: Callable[..., None]) -> Callable[..., None]:
    """Keras-convention SGD momentum with the wrong sign: v = g*lr - v*m; w -= v (right at step 0)."""
    def step(self: optimizers.SGD, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        if self.convention == "torch" or self.convention == "common":
            return original(self, params, grads)
        for name, p in params.items():
            g, dtype = grads[name], p.dtype.type
            lr, mu = dtype(self.learning_rate), _cast(self.momentum, dtype, self.convention)
            v = self.velocity.setdefault(name, np.zeros_like(p))
            v[...] = g * lr - v * mu
            p -= v
        return None
    return step


def plant_keras_adam_t_plus_1(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(optimizers.Adam, "_keras", _keras_adam_t_plus_1)


def plant_torch_adam_eps_inside_sqrt(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(optimizers.Adam, "_torch", _torch_adam_eps_inside_sqrt)


def plant_keras_momentum_wrong_sign(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(optimizers.SGD, "step", _sgd_keras_momentum_wrong_sign(optimizers.SGD.step))


CONVENTION_CASES = [
    # (id, plant, scenario, the reference run carrying the defect, the step it shows, the stage)
    ("keras-adam-t-plus-1", plant_keras_adam_t_plus_1, "tanh-adam", "numpy[keras]", 0, "updated layers.0.kernel"),
    ("torch-adam-eps-inside-sqrt", plant_torch_adam_eps_inside_sqrt, "tanh-adam", "numpy[torch]", 0,
     "updated layers.0.kernel"),
    ("keras-momentum-wrong-sign", plant_keras_momentum_wrong_sign, "minibatch-momentum", "numpy[keras]", 1,
     "updated layers.0.kernel"),
]


@pytest.mark.parametrize("case", CONVENTION_CASES, ids=[c[0] for c in CONVENTION_CASES])
def test_a_defect_in_one_convention_of_the_reference_blames_that_reference(case: tuple[Any, ...]) -> None:
    _, plant, name, carrier, step, stage = case
    result, diagnoses = judged(name, plant)
    assert not result.ok and result.state == DISAGREE
    # the convention pair is no longer explained away: its explanation rests on the faulty reference
    assert all(c.state != EXPLAINED for c in result.comparisons)
    check = result.rule_checks[(carrier, "float64")]
    assert check.failed and check.bad_step == step
    assert all(x.ok for (label, _), x in result.rule_checks.items() if label != carrier)
    failing = [d for d in diagnoses if d.comparison.state == DISAGREE]
    assert failing
    for d in failing:
        assert d.suspect is not None
        assert (d.suspect.label, d.suspect.step, d.suspect.stage) == (carrier, step, stage)
        assert "computed independently in exact arithmetic" in d.suspect.reason
        assert d.cause_name == NO_CAUSE
        if carrier in (d.comparison.a, d.comparison.b):  # the pair with the carrier diverges where it acts
            assert (d.step, d.stage) == (step, stage)
    assert_no_control_runs_the_code_it_checks(diagnoses)


def test_without_a_defect_the_convention_explanation_rests_on_independent_evidence() -> None:
    result, diagnoses = judged("tanh-adam", lambda mp: None)
    assert result.ok
    assert {c.pair for c in result.comparisons if c.state == EXPLAINED} == {"numpy[keras]-numpy[torch]", "keras-torch"}
    assert all(x.ok and x.steps == 30 for x in result.rule_checks.values())
    for d in diagnoses:
        assert d.cause_name == "optimizer convention"
        text = d.confirmed_by.describe() if d.confirmed_by is not None else ""
        assert "keras vs numpy[keras]" in text and "torch vs numpy[torch]" in text
        assert "numpy[keras]'s steps 0-29 follow Keras' Adam" in text
        assert "numpy[torch]'s steps 0-29 follow torch's Adam" in text
    assert_no_control_runs_the_code_it_checks(diagnoses)


def test_a_convention_defect_beyond_the_independent_check_has_no_majority_and_names_the_tie_breaker() -> None:
    """The check reaches steps 0-2 only (budget 0): a Keras-convention defect from step 5 on leaves
    numpy[keras] against keras, the only two computing that convention: no majority within it."""
    def plant(mp: pytest.MonkeyPatch) -> None:
        mp.setattr(textbook, "BUDGET", 0)
        original = optimizers.Adam._keras

        def late(self: optimizers.Adam, *args: Any) -> None:
            return (_keras_adam_t_plus_1 if self.t > 5 else original)(self, *args)
        mp.setattr(optimizers.Adam, "_keras", late)

    result, diagnoses = judged("tanh-adam", plant)
    assert not result.ok
    assert result.rule_checks[("numpy[keras]", "float64")].ok
    assert result.rule_checks[("numpy[keras]", "float64")].steps == textbook.MIN_STEPS
    failing = [d for d in diagnoses if d.comparison.state == DISAGREE]
    assert {d.comparison.pair for d in failing} >= {"numpy[keras]-keras"}
    for d in failing:
        assert d.suspect is not None and d.suspect.label is None
        assert d.suspect.reason.startswith("no majority within the Keras convention (numpy[keras] vs keras)")
        assert "run with --frameworks all: keras@jax and keras@torch compute Keras' formulas too" in d.suspect.reason
        assert d.cause_name == NO_CAUSE
    [d] = [d for d in failing if d.comparison.pair == "numpy[keras]-keras"]
    assert d.step == 5 and d.suspect is not None and d.suspect.step == 5
    assert_no_control_runs_the_code_it_checks(diagnoses)


# --- a run of another dtype ---------------------------------------------------------

def test_a_float32_run_computed_in_float64_disagrees_in_every_output() -> None:
    result, diagnoses = judged("tests/small-mlp", plant_torch_float32_run_in_float64, dtype="float32")
    fault = "torch (float32) computed its parameters in float64, loss in float64, gradients in float64"
    assert not result.ok and result.state == DISAGREE
    assert verdict_line(result) == f"Verdict: disagree (pairs: 1 agree, 0 differ, explained, 2 disagree): {fault}"
    data = result_dict(result, diagnoses=diagnoses)
    assert (data["state"], data["ok"]) == ("disagree", False)
    assert fault in data["summary"] and fault in summary_paragraph(result, diagnoses)
    assert fault in lead_paragraph(result, diagnoses)  # the report's opening says it too
    bad = [c for c in data["comparisons"] if "torch" in (c["a"], c["b"])]
    assert bad and all(c["state"] == "disagree" and c["faults"] == [fault] for c in bad)
    failing = [d for d in diagnoses if d.comparison.state == DISAGREE]
    assert sorted(d.comparison.pair for d in failing) == ["keras-torch", "numpy-torch"]
    for d in failing:
        assert d.suspect is not None and (d.suspect.label, d.suspect.step) == ("torch", 0)
        assert (d.step, d.stage, d.suspect.stage) == (0, "params layers.0.kernel", "params layers.0.kernel")
        assert d.cause_name == "computed in another dtype"
        assert fault in failure_text(result, d.comparison, diagnoses)


def test_the_pytest_plugin_fails_the_items_of_a_run_of_another_dtype(pytester: pytest.Pytester) -> None:
    folder = pytester.path / "scenarios"
    folder.mkdir()
    (folder / "small-mlp.toml").write_text((Path(__file__).parent / "scenarios" / "small-mlp.toml").read_text())
    with inline(), pytest.MonkeyPatch.context() as mp:
        plant_torch_float32_run_in_float64(mp)
        out = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--parity", "scenarios",
                                           "--parity-frameworks", "numpy,torch", "--parity-dtypes", "float32")
    out.assert_outcomes(failed=1)
    text = "\n".join(out.outlines)
    assert ("small-mlp: numpy vs torch (float32) disagree (torch (float32) computed its parameters in float64, "
            "loss in float64, gradients in float64): within the tolerance at every step, and still not a float32 "
            "pair") in text
    assert "cause: computed in another dtype" in text


# --- early stop -----------------------------------------------------------------------

def plant_reference_early_stop_after_update(mp: pytest.MonkeyPatch) -> None:
    """The reference's early-stop test takes effect after the update of the step it tests."""
    pending = [False]

    def test_after_update(loss: Any, previous: Any, tol: float | None) -> bool:
        decided, pending[0] = pending[0], should_stop(loss, previous, tol)
        return decided
    mp.setattr(numpy_reference, "should_stop", test_after_update)


def test_an_early_stop_after_the_update_is_the_step_only_one_side_made() -> None:
    result, diagnoses = judged("minibatch-regression", plant_reference_early_stop_after_update)
    stopped = {label: result.runs[(label, "float64")].steps for label in result.frameworks}
    assert stopped == {"numpy": 150, "keras": 149, "torch": 149}
    assert not result.ok
    failing = [d for d in diagnoses if d.comparison.state == DISAGREE]
    assert sorted(d.comparison.pair for d in failing) == ["numpy-keras", "numpy-torch"]
    for d in failing:
        other = d.comparison.b
        assert d.comparison.first_divergent_step == 149 and d.step == 149
        assert d.stage == EARLY_STOP
        assert d.suspect is not None and (d.suspect.label, d.suspect.step, d.suspect.stage) == (
            "numpy", 149, EARLY_STOP)
        assert d.cause_name == NO_CAUSE
        text = d.localisation.describe()
        assert f"{other} made 149 steps (stopped_early_at 149), numpy made 150 steps" in text
        assert "|loss_t - loss_(t-1)| < 1e-08) fires at step 149" in text
        assert (f"{other} applied it, stopping before step 149's update; numpy made step 149's update and then "
                "stopped") in text
