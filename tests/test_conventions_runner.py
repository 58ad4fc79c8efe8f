"""Optimizer conventions in the runner, the report and the diagnosis: each framework runs its
own optimizer class; the reference runs each convention; Keras-vs-torch differences that are
only the convention are explained, and anything beyond it is not."""
from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from harness.commands.cli import main
from harness.errors import BadInput
from harness.pipeline import diagnose, run_scenario
from harness.run.labels import with_convention
from harness.spec.scenario import parse_scenario

pytestmark = pytest.mark.slow  # every test here trains in Keras and torch

# The 3-4-1 tanh network of the diagnosis tests, trained by Adam (shuffled batches of 16, 20 steps).
SMALL_MLP = (Path(__file__).resolve().parent / "scenarios" / "small-mlp.toml").read_text()
SMALL_ADAM = SMALL_MLP.replace('name = "small-mlp"', 'name = "small-adam"').replace(
    'optimizer = { name = "sgd", learning_rate = 0.05 }', 'optimizer = { name = "adam", learning_rate = 0.01 }')


def scenario(text: str = SMALL_ADAM, path: str = "small-adam.toml"):
    return parse_scenario(tomllib.loads(text), path=Path(path))


@pytest.fixture(scope="module")
def native():
    return run_scenario(scenario(), dtypes=("float64",))


def test_the_reference_runs_once_per_convention_and_frameworks_run_their_own(native):
    assert native.frameworks == ("numpy[keras]", "numpy[torch]", "keras", "torch")
    conventions = {label: native.runs[(label, "float64")].convention for label in native.frameworks}
    assert conventions == {"numpy[keras]": "keras", "numpy[torch]": "torch", "keras": "keras", "torch": "torch"}
    pairs = {(c.a, c.b) for c in native.comparisons}
    assert pairs == {("numpy[keras]", "numpy[torch]"), ("numpy[keras]", "keras"), ("numpy[torch]", "torch"),
                     ("keras", "torch")}  # no reference against the framework of the other convention


def test_keras_and_torch_differ_only_by_the_adam_convention(native):
    assert native.comparison("numpy[keras]", "keras", "float64").agree
    assert native.comparison("numpy[torch]", "torch", "float64").agree
    kt = native.comparison("keras", "torch", "float64")
    assert not kt.agree and kt.first_divergent_step == 0
    assert kt.explained and kt.ok and kt.state == "differ, explained"
    assert kt.verdict.startswith("differ, explained: Adam epsilon placement")
    assert "default epsilon 1e-7 vs 1e-8" in kt.verdict
    assert native.agree and native.ok and native.state == "differ, explained"


def test_the_diagnosis_confirms_the_convention_through_the_reference(native):
    [d] = [d for d in diagnose(native) if (d.comparison.a, d.comparison.b) == ("keras", "torch")]
    assert d.cause.name == "optimizer convention"
    # each side against the reference in its own convention, and each of those references against
    # its convention's update rule computed independently: never a side re-run in the other's
    # convention (a framework cannot; the reference would be the other side's own code)
    text = d.confirmed_by.describe()
    assert "keras vs numpy[keras] (float64): agree" in text and "torch vs numpy[torch] (float64): agree" in text
    assert "numpy[keras]'s steps 0-" in text and "follow Keras' Adam (keras/src/optimizers/adam.py)" in text
    assert "numpy[torch]'s steps 0-" in text and "follow torch's Adam (torch/optim/adam.py)" in text
    assert d.controls == [d.confirmed_by]


def test_a_difference_beyond_the_convention_is_not_explained():
    """torch trains with a 1% larger learning rate: it no longer agrees with the reference in its
    convention, so Keras-vs-torch is a disagreement, not a convention difference."""
    s = scenario()
    wrong = replace(s, training=replace(s.training, optimizer=replace(s.training.optimizer, learning_rate=0.0101)))
    result = run_scenario(s, dtypes=("float64",), sides={"torch": wrong})
    assert not result.comparison("numpy[torch]", "torch", "float64").agree
    kt = result.comparison("keras", "torch", "float64")
    assert not kt.ok and kt.state == "disagree"
    assert kt.verdict == "disagree"  # torch runs a variant: its difference is not the convention's alone
    assert not result.agree and not result.ok and result.state == "disagree"


def test_adam_in_keras_convention_against_the_reference_in_torch_convention_is_diagnosed():
    """The deliberately mismatched pair of issue 4: Keras' Adam against the reference pinned to the
    torch convention. First divergence at step 0, introduced by the update (the gradients are
    equal), cause: the optimizer convention, confirmed by Keras against the reference in Keras'
    convention, and by each reference run against its convention's update rule."""
    pinned = with_convention(scenario(), "torch")
    result = run_scenario(pinned, frameworks=("numpy", "keras"), dtypes=("float64",), sides={"keras": scenario()})
    [c] = result.comparisons
    assert (c.a, c.b) == ("numpy", "keras") and not c.agree and not c.expected_difference
    assert c.first_divergent_step == 0 and c.mismatch.quantity.startswith("layers.")
    [d] = diagnose(result)
    assert d.step == 0 and d.cause.name == "optimizer convention"
    assert d.confirmed_by.control.description == "keras vs numpy[keras] (float64)"
    assert [x.label for x in d.confirmed_by.checks] == ["numpy", "numpy[keras]"]
    assert all(x.ok for x in d.confirmed_by.checks)
    assert d.localisation.appears_at.stage.startswith("updated ")
    assert all(not s.beyond_tolerance for s in d.localisation.stages if s.stage.startswith("gradient "))


def test_a_convention_keras_cannot_express_is_bad_input_before_anything_runs(tmp_path, capsys):
    path = tmp_path / "pinned.toml"
    path.write_text(SMALL_ADAM.replace('learning_rate = 0.01 }', 'learning_rate = 0.01, convention = "torch" }'))
    with pytest.raises(BadInput, match="training.optimizer.convention: expected a convention keras can express"):
        run_scenario(scenario(path.read_text(), str(path)), frameworks=("numpy", "keras"))
    assert main(["run", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pinned.toml: training.optimizer.convention" in err[0] and "received 'torch'" in err[0]
    assert main(["run", str(path), "--frameworks", "numpy,torch", "--dtype", "float64", "--quiet"]) == 0


@pytest.mark.parametrize("catalogue_result", ["xor-perceptron"], indirect=True, scope="session")
def test_accuracy_is_reported_for_every_run_and_split(catalogue_result):
    result = catalogue_result
    for label in result.frameworks:
        scores = result.accuracy[(label, "float64")]
        assert set(scores) == {"train", "validation", "test"}
        assert scores["train"] > 0.99 and scores["test"] >= 0.97
    assert result.accuracy[("numpy", "float64")] == result.accuracy[("torch", "float32")]


def test_the_convention_explanation_names_its_independent_evidence_and_no_path_leaks(tmp_path):
    """The report confirms the convention by each framework against the reference in its own
    convention and each reference against its convention's rule (no control that pins a side to
    the other's convention: Keras cannot run it, and the reference would run the other side's code),
    says "crashed" nowhere, and names no absolute path of this machine."""
    path = tmp_path / "small-adam.toml"
    path.write_text(SMALL_ADAM)
    assert main(["report", "--scenario", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    text = (tmp_path / "out" / "small-adam.md").read_text()
    assert "Confirmed by the control run keras vs numpy[keras] (float64): agree" in text
    assert "computed independently in exact arithmetic from its own gradients" in text
    assert "optimizer convention: not applicable" not in text
    assert "crashed" not in text
    for absolute in (str(Path.cwd().resolve()), str(tmp_path), str(Path(__file__).resolve().parent.parent)):
        assert absolute not in text
