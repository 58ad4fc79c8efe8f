"""The keys shipped in scenarios/keys/: every answer checked by the three implementations, and
what the harness finds about the labs' printed answers."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.answers.key_file import Answer, Settings, load_key
from harness.answers.verdicts import AnswerResult, check_entry

KEYS_DIR = Path(__file__).resolve().parent.parent / "scenarios" / "keys"

# key -> the verdicts the harness must reach (every other answer must be "correct")
FINDINGS = {
    "000-worked-examples": {"In[16] lr_gradient_descent": "not-reproducible"},
    "001-lecture-notes": {},
    "003-exercises": {"minibatch.converged": "not-reproducible"},
    "004-homework": {"problem 2 test accuracy": "implausible"},
}

pytestmark = pytest.mark.slow  # every answer computed in the reference, Keras and torch


@pytest.fixture(scope="module")
def checked(request: pytest.FixtureRequest) -> dict[str, AnswerResult]:
    """Every answer of the key ``request.param`` checked, once per module."""
    return {e.id: check_entry(e) for e in load_key(KEYS_DIR / f"{request.param}.toml").entries}


def test_every_shipped_key_is_tested():
    assert sorted(p.stem for p in KEYS_DIR.glob("*.toml")) == sorted(FINDINGS)


def _cases():
    for key in FINDINGS:
        for entry in load_key(KEYS_DIR / f"{key}.toml").entries:
            yield pytest.param(key, key, entry.id, id=f"{key}[{entry.id}]")


@pytest.mark.parametrize("checked,key,answer_id", list(_cases()), indirect=["checked"], scope="module")
def test_shipped_answer_verdict(checked, key, answer_id):
    result = checked[answer_id]
    assert result.verdict == FINDINGS[key].get(answer_id, "correct"), result.message or [p.rule for p in result.parts]


def test_003_exercises_are_all_answered():
    """Every exercise was filled in by `nn-parity answers`."""
    entries = load_key(KEYS_DIR / "003-exercises.toml").entries
    assert all(isinstance(e, Answer) and e.expected is not None for e in entries)


@pytest.mark.parametrize("checked", ["000-worked-examples"], indirect=True, scope="module")
def test_000_softmax_over_axis_1_of_a_column_is_flagged_degenerate(checked):
    warnings = checked["In[3] softmax"].warnings
    assert any("always 1" in w for w in warnings)


@pytest.mark.parametrize("checked, answer_id", [("000-worked-examples", "In[16] lr_gradient_descent"),
                                                ("003-exercises", "minibatch.converged")],
                         indirect=["checked"], scope="module")
def test_000_and_003_unseeded_shuffle_is_reported_with_the_harness_value(checked, answer_id):
    result = checked[answer_id]
    assert "global RNG" in result.message
    # not reproducible digit for digit, but the same minimum within 1e-3
    assert 0 < max(p.max_abs_diff for p in result.parts) < 1e-3


@pytest.mark.parametrize("checked", ["001-lecture-notes"], indirect=True, scope="module")
def test_001_tables_need_their_rounded_inputs_declared(checked):
    """Without inputs_rounded_to, the batch GD answers computed from the printed y are wrong."""
    entry = next(e for e in load_key(KEYS_DIR / "001-lecture-notes.toml").entries if e.id == "batch GD nabla at theta1")
    result = check_entry(replace(entry, settings=Settings(printed_precision=2)))
    assert result.verdict == "wrong"
    assert checked["batch GD nabla at theta1"].verdict == "correct"


@pytest.mark.parametrize("checked", ["004-homework"], indirect=True, scope="module")
def test_004_accuracy_above_100_percent_is_implausible(checked):
    result = checked["problem 2 test accuracy"]
    assert "110%" in result.message
    assert float(result.parts[0].computed) == 1.0


@pytest.mark.parametrize("checked", ["003-exercises"], indirect=True, scope="module")
def test_003_week4_keras_adam_is_checked_by_keras_in_float32_while_torch_checks_the_rest(checked):
    """The lab's printed Keras Adam weights pin Keras' convention and float32: Keras and the reference
    compute them, torch.optim.Adam (which cannot) sits out this answer only."""
    result = checked["week4.keras-adam"]
    assert result.verdict == "correct"
    assert isinstance(result.by_framework["keras"], dict) and isinstance(result.by_framework["numpy"], dict)
    assert str(result.by_framework["torch"]).startswith("skipped: it cannot compute convention 'keras'")
    assert all(isinstance(r.by_framework["torch"], dict) for answer_id, r in checked.items()
               if answer_id != "week4.keras-adam")
