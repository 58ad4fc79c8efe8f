"""Naming a suspect: with three or more implementations in a dtype, the one that disagrees with
every other while those agree among themselves is named, with its first step and the stage where
the difference shows; a two-way disagreement, or no clear odd one out, names none (no majority).

The first tests judge hand-made trajectories (no framework runs); the others plant a fault in ONE
real implementation: torch on a variant with another learning rate, or torch's own ``nn.Tanh``
monkeypatched to be slightly wrong."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.commands.cli import main
from harness.judge.compare import compare
from harness.judge.diagnosis import Diagnosis
from harness.judge.result import ScenarioResult
from harness.judge.suspects import suspect, suspects
from harness.pipeline import RUNS, diagnose, run_scenario
from harness.render.diagnosis_text import diagnosis_lines
from harness.render.file_set import scenario_files
from harness.run.trajectory import Trajectory
from harness.spec.scenario import Scenario, load_scenarios
from harness.spec.tolerance import Tolerance
from tests.on_first_use import torch

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
TIGHT = Tolerance(rtol=1e-12, atol=1e-14)


def small_mlp() -> Scenario:
    [s] = load_scenarios(SCENARIOS / "small-mlp.toml")
    return s


def with_lr(s: Scenario, lr: float) -> Scenario:
    return replace(s, training=replace(s.training, optimizer=replace(s.training.optimizer, learning_rate=lr)))


# --- the rule, on hand-made trajectories -----------------------------------------

def trajectory(label: str, w: list[float]) -> Trajectory:
    t = Trajectory(framework=label, dtype="float64")
    t.losses = np.asarray(w, dtype=float)
    t.params = {"w": np.asarray(w, dtype=float).reshape(-1, 1)}
    t.grads = {"w": np.zeros((len(w), 1))}
    return t


def judged(weights: dict[str, list[float]]) -> ScenarioResult:
    """A result whose runs are the given trajectories, every pair compared."""
    labels = tuple(weights)
    result = ScenarioResult(scenario=small_mlp(), frameworks=labels, dtypes=("float64",))
    result.runs = {(label, "float64"): trajectory(label, w) for label, w in weights.items()}
    result.comparisons = [compare(result.runs[(a, "float64")], result.runs[(b, "float64")], TIGHT)
                          for i, a in enumerate(labels) for b in labels[i + 1:]]
    return result


GOOD, OFF_AT_2, OFF_AT_1 = [1.0, 0.5, 0.25], [1.0, 0.5, 0.3], [1.0, 0.6, 0.3]


def test_the_one_that_differs_from_all_others_that_agree_is_the_suspect():
    s = suspect(judged({"numpy": GOOD, "keras": GOOD, "torch": OFF_AT_2}), "float64", runs=RUNS)
    assert s is not None and s.label == "torch" and s.others == ("numpy", "keras") and s.step == 2
    assert s.stage is None  # no localisation given
    assert s.reason == "torch differs from numpy and keras, which agree: suspect torch, from step 2"


def test_the_reference_in_two_conventions_counts_as_one_implementation():
    s = suspect(judged({"numpy[keras]": GOOD, "numpy[torch]": GOOD, "keras": OFF_AT_1, "torch": GOOD}), "float64",
                runs=RUNS)
    assert s is not None and s.label == "keras" and s.others == ("numpy", "torch") and s.step == 1


def test_nothing_disagrees_no_suspect():
    assert suspect(judged({"numpy": GOOD, "keras": GOOD, "torch": GOOD}), "float64", runs=RUNS) is None


def test_two_implementations_that_each_differ_have_no_majority():
    s = suspect(judged({"numpy": GOOD, "keras": OFF_AT_1, "torch": OFF_AT_2}), "float64", runs=RUNS)
    assert s is not None and s.label is None and s.step is None
    assert s.reason == ("no majority in float64: no group of more than half of numpy, keras and torch agrees "
                        "among itself while each other one differs from all of its members (disagreeing pairs: "
                        "numpy-keras, numpy-torch, keras-torch)")


def test_two_odd_ones_beside_a_majority_are_both_suspects():
    """Five implementations, two of which each differ from the three that agree (as keras@jax and
    keras@torch can): both are named, each with its own first step."""
    result = judged({"numpy": GOOD, "keras": GOOD, "torch": GOOD, "keras@jax": OFF_AT_1, "keras@torch": OFF_AT_2})
    found = suspects(result, "float64", runs=RUNS)
    assert [(x.label, x.others, x.step) for x in found] == [
        ("keras@jax", ("numpy", "keras", "torch"), 1), ("keras@torch", ("numpy", "keras", "torch"), 2)]
    assert found[0].reason == ("keras@jax (as keras@torch) differs from numpy, keras and torch, which agree: "
                               "suspect keras@jax, from step 1")
    two_against_two = judged({"numpy": GOOD, "keras": GOOD, "torch": OFF_AT_1, "keras@jax": OFF_AT_1})
    [none] = suspects(two_against_two, "float64", runs=RUNS)
    assert none.label is None and none.reason.startswith("no majority in float64")


def test_a_two_way_disagreement_has_no_majority():
    s = suspect(judged({"numpy": GOOD, "torch": OFF_AT_2}), "float64", runs=RUNS)
    assert s is not None and s.label is None
    assert s.reason == ("no majority in float64: only two implementations (numpy and torch), so their "
                        "disagreement cannot say which one is wrong")


# --- faults planted in one real implementation -------------------------------------

def wrong_tanh(self: torch.nn.Tanh, x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x * (1 + 1e-6))  # a wrong formula no measurement explains (not a constant factor)


@pytest.fixture(scope="module")
def torch_on_another_learning_rate() -> tuple[ScenarioResult, list[Diagnosis]]:
    s = small_mlp()
    result = run_scenario(s, dtypes=("float64",), sides={"torch": with_lr(s, 0.06)})
    return result, diagnose(result)


@pytest.mark.slow
def test_a_wrong_learning_rate_in_torch_names_torch(torch_on_another_learning_rate):
    result, diagnoses = torch_on_another_learning_rate
    s = suspect(result, "float64", runs=RUNS, localisations={id(d.comparison): d.localisation for d in diagnoses})
    assert s is not None and (s.label, s.step, s.stage) == ("torch", 0, "updated layers.0.kernel")
    line = "torch differs from numpy and keras, which agree: suspect torch, from step 0 at `updated layers.0.kernel`"
    assert s.reason == line
    assert sorted(d.comparison.pair for d in diagnoses) == ["keras-torch", "numpy-torch"]
    assert all(d.suspect == s for d in diagnoses)
    md = scenario_files(result, diagnoses)["small-mlp.md"].decode()
    assert f"- Suspect: {line}." in md
    assert "**Verdict: disagree** (pairs: 1 agree, 0 differ, explained, 2 disagree)" in md
    assert "### numpy-torch (float64, disagrees): learning rate" in md


@pytest.mark.slow
def test_a_wrong_activation_inside_torch_names_torch_at_the_layer(monkeypatch, frameworks_in_process):
    """torch's own nn.Tanh made wrong by 1e-6 (relative): the runs, the replayed step and every
    control run use it, as a bug in the framework would."""
    monkeypatch.setattr(torch.nn.Tanh, "forward", wrong_tanh)
    result = run_scenario(small_mlp(), dtypes=("float64",))
    diagnoses = diagnose(result)
    assert sorted(d.comparison.pair for d in diagnoses) == ["keras-torch", "numpy-torch"]
    for d in diagnoses:
        assert d.step == 0 and d.stage == "output layers.0"
        assert d.suspect is not None and (d.suspect.label, d.suspect.step, d.suspect.stage) == (
            "torch", 0, "output layers.0")
        assert d.cause is None  # no registered cause: a wrong formula is found, not explained
    text = "\n".join(diagnosis_lines(diagnoses))
    assert ("- Suspect: torch differs from numpy and keras, which agree: suspect torch, from step 0 at "
            "`output layers.0`.") in text


@pytest.mark.slow
def test_two_implementations_that_each_differ_name_no_suspect():
    s = small_mlp()
    result = run_scenario(s, dtypes=("float64",), sides={"keras": with_lr(s, 0.04), "torch": with_lr(s, 0.06)})
    diagnoses = diagnose(result)
    assert len(diagnoses) == 3
    for d in diagnoses:
        assert d.suspect is not None and d.suspect.label is None
        assert d.suspect.reason.startswith("no majority in float64: no group of more than half of numpy, keras "
                                           "and torch")
    assert "- Suspect: no majority in float64" in "\n".join(diagnosis_lines(diagnoses))


@pytest.mark.slow
def test_run_prints_the_suspect_and_writes_it_in_the_json(monkeypatch, tmp_path, capsys, frameworks_in_process):
    monkeypatch.setattr(torch.nn.Tanh, "forward", wrong_tanh)
    path = tmp_path / "small-mlp.toml"
    path.write_text((SCENARIOS / "small-mlp.toml").read_text())
    out = tmp_path / "run.json"
    assert main(["run", str(path), "--dtype", "float64", "--json", str(out), "--quiet"]) == 1
    printed = capsys.readouterr().out
    assert "Verdict: disagree (pairs: 1 agree, 0 differ, explained, 2 disagree)" in printed
    assert "### numpy-torch (float64, disagrees): no known cause confirmed" in printed
    assert ("- Suspect: torch differs from numpy and keras, which agree: suspect torch, from step 0 at "
            "`output layers.0`.") in printed
    data = json.loads(out.read_text())
    assert data["ok"] is False and data["agree"] is False and data["state"] == "disagree"
    by_pair = {(c["a"], c["b"]): c for c in data["comparisons"]}
    assert by_pair[("numpy", "keras")]["state"] == "agree" and by_pair[("numpy", "keras")]["diagnosis"] is None
    for pair in (("numpy", "torch"), ("keras", "torch")):
        c = by_pair[pair]
        assert (c["state"], c["agree"], c["ok"], c["explained"]) == ("disagree", False, False, False)
        assert {k: c["diagnosis"][k] for k in ("step", "stage", "suspect", "cause", "confirmed_by")} == {
            "step": 0, "stage": "output layers.0", "suspect": "torch", "cause": None, "confirmed_by": None}
