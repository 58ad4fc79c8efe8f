"""``harness.testing``'s assertions refuse to pass on nothing (issue 25, item 3): a parity
assertion with nothing to compare fails, and a tolerance that is nan, infinite or negative is
refused by the rule of a scenario file's ``[tolerance]`` (``harness.spec.scenario.tolerance_term``)
before anything runs, because a nan tolerance passes any disagreement."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from harness.errors import BadInput
from harness.testing import assert_gradients_match, assert_parity

SCENARIOS = Path(__file__).parent / "scenarios"
# float64 with rtol = atol = ulps = 0: numpy and torch differ in the last bits, so it must fail
BROKEN = (SCENARIOS / "small-mlp.toml").read_text().replace('name = "small-mlp"', 'name = "broken"') + \
    '\n[tolerance]\nfloat64 = { rtol = 0.0, atol = 0.0, ulps = 0 }\n'
AUDIT = str(Path(__file__).resolve().parent.parent / "scenarios" / "keys" / "audits" / "xor-relu-sigmoid.toml")


@pytest.mark.parametrize("frameworks", [(), ("numpy",)])
def test_nothing_compared_fails(frameworks: tuple[str, ...]) -> None:
    with pytest.raises(AssertionError, match=r"^small-mlp: nothing was compared \(frameworks="):
        assert_parity(SCENARIOS / "small-mlp.toml", frameworks=frameworks, dtypes=("float64",))


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("rtol", math.nan, "a finite number"), ("atol", math.nan, "a finite number"),
    ("rtol", math.inf, "a finite number"), ("atol", -math.inf, "a finite number"),
    ("rtol", -1e-9, "a number >= 0.0"), ("atol", -1.0, "a number >= 0.0"), ("rtol", "1e-5", "a number")])
def test_a_tolerance_that_is_not_a_finite_number_ge_0_is_refused(tmp_path: Path, option: str, value: object,
                                                                  expected: str) -> None:
    """The planted disagreement (a zero tolerance in float64) would pass with rtol = nan; it is
    refused, naming the option, before a run starts."""
    (tmp_path / "broken.toml").write_text(BROKEN)
    with pytest.raises(BadInput) as refused:
        assert_parity(tmp_path / "broken.toml", frameworks=("numpy", "torch"), dtypes=("float64",),
                      **{option: value})  # type: ignore[arg-type]
    assert refused.value.one_line().startswith(f"broken: harness.testing: {option}: expected {expected}; received ")
    with pytest.raises(BadInput, match=rf"^xor-relu-sigmoid: harness.testing: {option}: expected {expected}"):
        assert_gradients_match(lambda params, X, y: {}, AUDIT, **{option: value})  # type: ignore[arg-type]
