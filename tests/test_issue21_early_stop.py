"""An early stop that rounding decides (issue 21: seed 12's example 1607). With early_stop_tol = 1e-8
on a float32 loss near 1.53 (spacing 1.2e-7) the stop fires only on a loss unchanged to the bit: the
references stop at step 24, keras and torch change by an ulp and go on. A pair that parts only there,
with the other side's loss change within the stop's tolerance plus twice the agreement rule's
allowance for the loss, is ``rounding_decides`` (``harness.judge.compare.stop_within_rule``): the
fuzzer counts it ill-conditioned. A stop where the loss still moves is reported."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.fuzz.oracle import FINDING, ILL_CONDITIONED, ROUNDING_DECIDES, judge_example
from harness.fuzz.space import Example
from harness.judge.compare import DISAGREE
from harness.pipeline import run_scenario
from harness.run.adapters import numpy_reference
from harness.spec.fields import read_toml
from harness.spec.scenario import load_scenarios

FILE = Path(__file__).resolve().parent / "scenarios" / "fuzz-seed12-example1607.toml"
WITH_R = Path(__file__).resolve().parent / "scenarios" / "fuzz-seed12-guided740.toml"  # R counted at the stop
R_INFINITE = Path(__file__).resolve().parent / "scenarios" / "fuzz-seed13-example1694.toml"  # a jittered run stops too
FRAMEWORKS = ("numpy", "keras", "torch")


@pytest.mark.usefixtures("shared_runs")  # the oracle is served the runs the test made
@pytest.mark.slow
def test_a_stop_rounding_decides_is_ill_conditioned() -> None:
    """numpy[keras] stops at 24, keras goes on with a loss change of an ulp: the pair disagrees, says
    rounding decides it, and the fuzzer counts the example ill-conditioned with that reason."""
    [scenario] = load_scenarios(FILE)
    result = run_scenario(scenario, frameworks=FRAMEWORKS, dtypes=("float32",))
    c = result.pair("numpy[keras]", "keras", "float32")
    assert c is not None and c.state == DISAGREE and c.mismatch is None and c.rounding_decides
    assert result.runs[("numpy[keras]", "float32")].stopped_early_at == 24
    outcome = judge_example(Example(read_toml(FILE, what="scenario file"), ()), frameworks=FRAMEWORKS,
                            dtypes=("float32",))
    assert (outcome.kind, outcome.reason) == (ILL_CONDITIONED, ROUNDING_DECIDES), outcome


@pytest.mark.slow
def test_a_stop_where_the_loss_still_moves_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference planted to read the stop's tolerance a million times too large (1e-2): it stops
    where keras's and torch's losses still change by far more than the stop's tolerance and the rule's
    allowance, so rounding does not decide it: a finding with numpy the suspect."""
    original = numpy_reference.should_stop
    monkeypatch.setattr(numpy_reference, "should_stop",
                        lambda loss, previous, tol: original(loss, previous, None if tol is None else tol * 1e6))
    [scenario] = load_scenarios(FILE)
    result = run_scenario(scenario, frameworks=FRAMEWORKS, dtypes=("float32",))
    c = result.pair("numpy[keras]", "keras", "float32")
    assert c is not None and c.state == DISAGREE and not c.rounding_decides
    stop = result.runs[("numpy[keras]", "float32")].stopped_early_at
    assert stop is not None and stop < 24
    outcome = judge_example(Example(read_toml(FILE, what="scenario file"), ()), frameworks=FRAMEWORKS,
                            dtypes=("float32",))
    assert outcome.kind == FINDING and "numpy" in {fp.suspect for fp in outcome.fingerprints}, outcome

@pytest.mark.usefixtures("shared_runs")  # the oracle is served the runs the test made

@pytest.mark.slow
def test_a_stop_within_the_loss_s_measured_rounding_is_ill_conditioned() -> None:
    """keras stops at 23 where numpy[keras]'s loss changes by 1.8e-4 against a tolerance of 1e-4: beyond
    the fixed terms' allowance, within the loss's measured rounding there (the pair agreed before only
    with it): rounding decides; the fuzzer counts the example ill-conditioned."""
    [scenario] = load_scenarios(WITH_R)
    result = run_scenario(scenario, frameworks=FRAMEWORKS, dtypes=("float32",))
    c = result.pair("numpy[keras]", "keras", "float32")
    assert c is not None and c.state == DISAGREE and c.mismatch is None and c.rounding and c.rounding_decides
    outcome = judge_example(Example(read_toml(WITH_R, what="scenario file"), ()), frameworks=FRAMEWORKS,
                            dtypes=("float32",))
    assert (outcome.kind, outcome.reason) == (ILL_CONDITIONED, ROUNDING_DECIDES), outcome
@pytest.mark.usefixtures("shared_runs")  # the oracle is served the runs the test made


@pytest.mark.slow
def test_a_stop_that_moves_a_jittered_reference_run_is_ill_conditioned() -> None:
    """keras stops at 12 where numpy[keras]'s loss changes by 6e-3 (tolerance 1e-4), and a jittered
    reference run stops at another step there (the loss's R is infinite): rounding decides the stop."""
    [scenario] = load_scenarios(R_INFINITE)
    result = run_scenario(scenario, frameworks=FRAMEWORKS, dtypes=("float32",))
    c = result.pair("numpy[keras]", "keras", "float32")
    assert c is not None and c.state == DISAGREE and c.mismatch is None and c.rounding_decides
    outcome = judge_example(Example(read_toml(R_INFINITE, what="scenario file"), ()), frameworks=FRAMEWORKS,
                            dtypes=("float32",))
    assert outcome.kind == ILL_CONDITIONED, outcome
