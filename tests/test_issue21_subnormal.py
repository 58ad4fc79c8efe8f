"""The fuzzer's most frequent finding, explained: TensorFlow and XLA flush subnormal numbers to zero
on the CPU. A pair parted by that differs, explained, by ``subnormals flushed to zero``
(``harness.judge.causes.subnormals``), confirmed by the reference's run made again with every
NumPy operation's subnormal arguments and results flushed (none of the framework's code); a
framework that does not flush, or a defect beside the flush, is not explained by it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.fuzz.oracle import EXPLAINED, FINDING, judge_example
from harness.fuzz.space import Example
from harness.judge.causes.evidence import Finding
from harness.judge.causes.subnormals import NAME, Flushed
from harness.judge.compare import DISAGREE
from harness.judge.compare import EXPLAINED as EXPLAINED_STATE
from harness.pipeline import diagnose, run_scenario
from harness.run.adapters import adapter, keras_tf
from harness.run.adapters.workers import inline
from harness.spec.fields import read_toml
from harness.spec.scenario import load_scenarios, parse_scenario
from tests.on_first_use import torch
from tests.test_planted_defects import plant_keras_learning_rate_default

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
NAN_AT_STEP_0 = SCENARIOS / "bce-sigmoid-flushed-to-zero.toml"  # keras: 0 x log(0) at step 0
FINITE = SCENARIOS / "sigmoid-subnormal-input.toml"  # keras: finite, 1e-11 apart from step 0
FORWARD_ONLY = SCENARIOS / "fuzz-seed12-example1507.toml"  # float32: inf x a flushed subnormal weight
AMPLIFIED = SCENARIOS / "fuzz-seed12-example1519.toml"  # float32: flushed weights, then Adam's rounding
FRAMEWORKS = ("numpy", "keras", "torch")


def test_flushed_arrays_read_and_write_subnormals_as_zero() -> None:
    """The model of the arithmetic: subnormal arguments read as 0 (1e-310 x 1e300 is 0, not 1e-10),
    subnormal results written as 0 (sigmoid(-709.78), 1e-200 x 1e-110), in-place results too, and
    every normal number computed as NumPy computes it, bit for bit."""
    x = Flushed.of(np.array([[1e-310, 1.0]]))
    assert isinstance(x, Flushed) and x[0, 0] == 0.0
    z = np.array([[1e-310, 1.0]]).view(Flushed) @ np.array([[1e300], [0.3]])
    assert isinstance(z, Flushed) and z[0, 0] == 0.3
    s = 1.0 / (1.0 + np.exp(-np.array([-709.78, 3.0]).view(Flushed)))
    assert s[0] == 0.0 and s[1] == 1.0 / (1.0 + np.exp(-3.0))
    p = np.array([1e-200]).view(Flushed)
    p *= 1e-110
    assert p[0] == 0.0 and np.sum(np.array([1e-200, 2.0]).view(Flushed) * 1e-110) == 2e-110
    assert float(np.mean(np.array([1e-300, 3e-300]).view(Flushed) * 1e-10)) == 0.0
    normal = np.linspace(-3, 3, 7)
    assert np.array_equal(np.tanh(normal.view(Flushed)), np.tanh(normal))


def _forward(framework: str, dtype: str, x: float) -> float:
    """sigmoid(x) as the implementation's adapter computes a one-unit sigmoid layer (in its worker)."""
    [scenario] = load_scenarios(NAN_AT_STEP_0)
    params = {"layers.0.kernel": np.ones((1, 1), dtype=dtype), "layers.0.bias": np.zeros(1, dtype=dtype)}
    [out] = adapter(framework).forward(scenario, params, np.array([[x]], dtype=dtype))
    return float(np.asarray(out).ravel()[0])


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["numpy", "keras", "torch", "keras@jax", "keras@torch"])
def test_each_implementation_declares_what_it_computes(framework: str) -> None:
    """``Adapter.subnormals`` against the implementation itself: sigmoid(-709.78) in float64 and
    sigmoid(-88) in float32 (subnormal results, 5.6e-309 and 6.1e-39 in IEEE arithmetic) are 0
    exactly in the implementations that declare the flush, and the subnormal value elsewhere."""
    declared = adapter(framework).subnormals is not None
    for dtype, x in (("float64", -709.78), ("float32", -88.0)):
        ieee = float(1 / (1 + np.exp(-np.asarray(x, dtype=dtype))))
        assert 0 < ieee < np.finfo(dtype).tiny
        got = _forward(framework, dtype, x)
        assert (got == 0.0) if declared else (got > 0.0), (framework, dtype, got, declared)
    assert declared == (framework in ("keras", "keras@jax"))


@pytest.mark.usefixtures("shared_runs")  # the oracle is served the runs the test made
@pytest.mark.slow
@pytest.mark.parametrize("file", [NAN_AT_STEP_0, FINITE], ids=lambda p: p.stem)
def test_a_pair_parted_by_the_flush_differs_explained(file: Path) -> None:
    """keras's nan at step 0 (a flushed sigmoid under an unguarded cross-entropy), and keras's finite
    run 1e-11 from the reference's (a flushed input): each pair with keras differs, explained, by the
    flush, confirmed by the flushed reference run and pointing at keras; numpy and torch agree; the
    fuzzer counts the file as differ, explained, not a finding."""
    [scenario] = load_scenarios(file)
    result = run_scenario(scenario, frameworks=FRAMEWORKS, dtypes=("float64",))
    assert result.ok and result.state == EXPLAINED_STATE
    assert result.pair("numpy", "torch", "float64").agree
    diagnoses = {(d.comparison.a, d.comparison.b): d for d in diagnose(result)
                 if d.comparison.state == EXPLAINED_STATE}
    assert set(diagnoses) == {("numpy", "keras"), ("keras", "torch")}, sorted(diagnoses)
    for d in diagnoses.values():
        assert d.step == 0 and d.cause_name == NAME
        assert isinstance(d.confirmed_by, Finding) and d.confirmed_by.side == "keras"
        assert "made again with subnormals flushed to zero" in d.confirmed_by.description
    outcome = judge_example(Example(read_toml(file, what="scenario file"), ()), frameworks=FRAMEWORKS,
                            dtypes=("float64",))
    assert (outcome.kind, outcome.reason) == (EXPLAINED, NAME)


def _not_explained_by_the_flush(raw: dict, suspect: str, *, blamed: set[str]) -> None:  # type: ignore[type-arg]
    """``suspect``'s pairs disagree and none is named by the flush; the fuzzer reports a finding whose
    suspects are ``blamed``."""
    result = run_scenario(parse_scenario(raw, path=FINITE), frameworks=FRAMEWORKS, dtypes=("float64",))
    diagnoses = [d for d in diagnose(result) if d.comparison.state == DISAGREE]
    outcome = judge_example(Example(raw, ()), frameworks=FRAMEWORKS, dtypes=("float64",))
    assert (suspect, "float64") not in result.properties, result.properties
    with_suspect = [d for d in diagnoses if suspect in (d.comparison.a, d.comparison.b)]
    assert with_suspect and all(d.cause_name != NAME for d in with_suspect), [d.cause_name for d in diagnoses]
    assert outcome.kind == FINDING, outcome
    assert all(fp.cause != NAME for fp in outcome.fingerprints), outcome
    assert {fp.suspect for fp in outcome.fingerprints} == blamed, outcome


@pytest.mark.slow
def test_a_keras_defect_beside_the_flush_is_still_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    """keras planted to train at another learning rate on the finite scenario: its run no longer agrees
    with the flushed reference run, so the flush does not account for it; keras is the suspect."""
    raw = read_toml(FINITE, what="scenario file")
    with inline():
        plant_keras_learning_rate_default(monkeypatch)
        _not_explained_by_the_flush(raw, "keras", blamed={"keras"})


@pytest.mark.slow
def test_a_framework_that_does_not_declare_the_flush_is_not_accounted_for_by_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """torch made to flush subnormals during its runs (``torch.set_flush_denormal``: the thread's FTZ
    and DAZ, set for its run only, as the reference computes in this process too) computes what the
    flushed reference computes; torch declares no such arithmetic, so its pairs are reported, not
    explained, with torch the suspect."""
    torch_adapter = type(adapter("torch"))
    original = torch_adapter.run

    def flushing_run(self, plan):  # noqa: ANN001, ANN202 - planted
        assert torch.set_flush_denormal(True)
        try:
            return original(self, plan)
        finally:
            torch.set_flush_denormal(False)
    monkeypatch.setattr(torch_adapter, "run", flushing_run)
    with inline():
        # keras (its own flush, explained) and torch agree against the reference: no majority to blame
        _not_explained_by_the_flush(read_toml(FINITE, what="scenario file"), "torch", blamed={"no-majority"})


@pytest.mark.slow
def test_a_reference_that_flushes_is_not_explained_by_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference planted to flush (its run made on flushed arrays): it agrees with keras, torch
    differs from both and is reported; torch's run does not agree with the flushed run either, and the
    flush names nothing."""
    reference = type(adapter("numpy"))
    original = reference.run
    monkeypatch.setattr(reference, "run", lambda self, plan: original(self, Flushed.plan(plan)))
    raw = read_toml(FINITE, what="scenario file")
    with inline():
        result = run_scenario(parse_scenario(raw, path=FINITE), frameworks=FRAMEWORKS, dtypes=("float64",))
        outcome = judge_example(Example(raw, ()), frameworks=FRAMEWORKS, dtypes=("float64",))
    assert result.pair("numpy", "keras", "float64").agree and not result.properties
    assert result.state == DISAGREE and outcome.kind == FINDING
    assert all(fp.cause != NAME for fp in outcome.fingerprints), outcome
    assert keras_tf.KerasAdapter.subnormals is not None  # keras still declares it: the gate is the measurement


def test_jittered_over_the_flush_flushes_then_moves_one_ulp() -> None:
    """Rounding's reach in the flushed arithmetic: a subnormal result is 0 (not moved), a normal one is
    moved one ulp, and a function's result stays in that arithmetic."""
    from harness.judge.rounding import _jittering, jittered_in  # noqa: PLC0415 - the measure's internals

    cls = jittered_in(Flushed)
    x = cls.of(np.array([1e-300, 3.0]))
    with _jittering(1):
        y = x * np.array([1e-10, 1.0])
        w = np.where(np.array([True, False]), x, x) * 1.0
    assert y[0] == 0.0 and y[1] != 3.0 and abs(y[1] - 3.0) <= np.spacing(3.0)
    assert isinstance(w, cls)

@pytest.mark.usefixtures("shared_runs")  # the oracle is served the runs the test made

@pytest.mark.slow
@pytest.mark.parametrize("file", [FORWARD_ONLY, AMPLIFIED], ids=lambda p: p.stem)
def test_fuzz_findings_of_seed_12_differ_explained_by_the_flush(file: Path) -> None:
    """A forward-only scenario (its outputs compared) and a float32 run whose flushed weights Adam then
    amplifies (compared with R measured in the flushed arithmetic): each pair with keras differs,
    explained, by the flush; the fuzzer counts each as differ, explained."""
    [scenario] = load_scenarios(file)
    result = run_scenario(scenario, frameworks=FRAMEWORKS, dtypes=("float32",))
    assert result.ok and result.state == EXPLAINED_STATE, result.state
    assert {found.cause.name for found in result.properties.values()} == {NAME}
    assert set(label for label, _ in result.properties) == {"keras"}
    outcome = judge_example(Example(read_toml(file, what="scenario file"), ()), frameworks=FRAMEWORKS,
                            dtypes=("float32",))
    assert (outcome.kind, outcome.reason) == (EXPLAINED, NAME)


@pytest.mark.slow
def test_a_keras_defect_beside_the_amplified_flush_is_still_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    """keras planted to train at lr 0.01 on the float32 scenario whose flush Adam amplifies: the flushed
    reference's R does not reach it; reported, keras the suspect."""
    raw = read_toml(AMPLIFIED, what="scenario file")
    with inline():
        plant_keras_learning_rate_default(monkeypatch)
        result = run_scenario(parse_scenario(raw, path=AMPLIFIED), frameworks=FRAMEWORKS, dtypes=("float32",))
        outcome = judge_example(Example(raw, ()), frameworks=FRAMEWORKS, dtypes=("float32",))
    assert ("keras", "float32") not in result.properties
    assert outcome.kind == FINDING and "keras" in {fp.suspect for fp in outcome.fingerprints}, outcome
