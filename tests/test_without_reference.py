"""Keras and torch run without the reference: a known difference (an optimizer convention) cannot be
confirmed, and the pair's verdict says the reference is needed (issue 22, item 7); ``--help`` says
which frameworks run by default."""
from __future__ import annotations

import pytest

from harness.commands.cli import main
from harness.pipeline import run_scenario
from harness.spec.catalogue import resolve


@pytest.mark.slow
def test_a_convention_difference_without_the_reference_says_the_reference_is_needed():
    scenario = resolve("minibatch-momentum")  # SGD momentum: Keras' and torch's formulas differ
    without = run_scenario(scenario, frameworks=("keras", "torch"), dtypes=("float64",))
    [pair] = without.comparisons
    assert pair.state == "disagree"
    assert pair.verdict.startswith("disagree: the known difference (SGD momentum form")
    assert pair.verdict.endswith("is not confirmed: the reference (numpy) is needed to confirm it, and did not "
                                 "run: add numpy to --frameworks")
    with_reference = run_scenario(scenario, frameworks=("numpy", "keras", "torch"), dtypes=("float64",))
    [native] = [c for c in with_reference.comparisons if {c.a, c.b} == {"keras", "torch"}]
    assert native.state == "differ, explained" and "not confirmed" not in native.verdict


@pytest.mark.parametrize("command", ["run", "report", "check", "answers"])
def test_help_says_the_default_framework_set(command, capsys):
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: numpy,keras,torch;" in text and "default: all" not in text
    assert "or all (every one: Keras on JAX and torch too)" in text
