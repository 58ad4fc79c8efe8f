"""A `scenario` answer pins the optimizer convention and the dtype it is computed in (issue 12, §4):
the Week 4 lab's printed Keras Adam weights (float32, Keras' arithmetic) are checked beside torch,
which sits out only the answers it cannot compute; an answer that depends on the convention and
pins none is malformed, never a harness fault or a pass in the wrong convention."""
from __future__ import annotations

import numpy as np
import pytest

from harness.answers.key_file import Answer, load_key
from harness.answers.questions import ScenarioQuestion
from harness.answers.verdicts import AnswerResult, check_entry
from harness.commands.cli import main
from harness.spec.printed import parse_printed

pytestmark = pytest.mark.slow  # real Keras and torch runs

# Adam on 4 rows, full batch, 6 steps: the Keras and torch conventions part from step 0 (epsilon
# 1e-7 added before the bias correction against 1e-8 after it) by far more than float64's tolerance.
ADAM_SCENARIO = """name = "tiny-adam"
[data]
X = [[1.0, 2.0], [3.0, 4.0], [-1.0, 0.5], [2.0, -2.0]]
y = [[1.0], [2.0], [0.0], [1.5]]
[model]
input_dim = 2
[[model.layers]]
units = 1
activation = "linear"
kernel = [[0.5], [-0.5]]
bias = [0.1]
[training]
loss = "mse"
optimizer = { name = "adam", learning_rate = 0.01, epsilon = 0.1 }
batch_size = "full"
epochs = 6
"""

WEEK4_W1 = '''"""
array([[0.25250572, 0.75124925],
       [0.49919188, 0.50062895],
       [0.74790984, 0.2485936 ]], dtype=float32)
"""'''
WEEK4_W2 = '''"""
array([[2.0164018],
       [2.983464 ]], dtype=float32)
"""'''
WEEK4 = ('compute = "scenario"\nscenario = "sigmoid-exponential-adam"\nquantity = "params"\nconvention = "keras"\n'
         'dtype = "float32"')


def key_text(answers: dict[str, str]) -> str:
    body = "".join(f'\n[[answer]]\nid = "{i}"\n{fields}\n' for i, fields in answers.items())
    return f'title = "conventions"\n{body}'


def check(tmp_path, answers: dict[str, str]) -> dict[str, AnswerResult]:
    (tmp_path / "tiny-adam.toml").write_text(ADAM_SCENARIO)
    path = tmp_path / "key.toml"
    path.write_text(key_text(answers))
    return {e.id: check_entry(e) for e in load_key(path).entries}


def tiny(quantity: str, extra: str = "") -> str:
    return f'compute = "scenario"\nscenario = "tiny-adam.toml"\nquantity = "{quantity}"\n{extra}'


@pytest.fixture(scope="module")
def week4(tmp_path_factory) -> dict[str, AnswerResult]:
    """The lab's printed Keras weights, and the same with w1[0, 0] planted 1e-4 off."""
    planted = WEEK4_W1.replace("0.25250572", "0.25260572")
    return check(tmp_path_factory.mktemp("week4"), {
        "printed": f"{WEEK4}\nexpected = {{ w1 = {WEEK4_W1}, w2 = {WEEK4_W2} }}",
        "planted": f"{WEEK4}\nexpected = {{ w1 = {planted}, w2 = {WEEK4_W2} }}"})


def test_the_week4_keras_adam_weights_check_green_in_keras_convention_and_float32(week4):
    result = week4["printed"]
    assert result.verdict == "correct", result.message or [p.rule for p in result.parts]
    assert isinstance(result.by_framework["numpy"], dict) and isinstance(result.by_framework["keras"], dict)
    assert result.by_framework["torch"] == "skipped: it cannot compute convention 'keras' (its optimizer class " \
                                          "computes 'torch')"
    assert any(w.startswith("torch skipped") for w in result.warnings)
    assert any("computed in float32" in w for w in result.warnings)
    for part in result.parts:  # the values are float32 numbers, and judged with float32's allowance
        np.testing.assert_array_equal(part.computed, part.computed.astype(np.float32))
        assert "arithmetic atol 1e-07 + rtol 1e-05" in part.rule


def test_a_planted_week4_weight_is_wrong_with_the_correct_value(week4):
    result = week4["planted"]
    assert result.verdict == "wrong"
    [bad] = [p for p in result.parts if not p.ok]
    assert bad.part == "w1" and bad.max_abs_diff == pytest.approx(1e-4, rel=0.02)
    text = bad.computed_text()  # printed as the key printed it: repr() of a float32 array, 8 decimals
    assert text.startswith("array([[0.2525") and text.endswith("dtype=float32)")
    shown = parse_printed(text).values
    np.testing.assert_allclose(shown, bad.computed, atol=5e-9)
    assert abs(shown[0, 0] - 0.25250572) < 1e-6  # the lab's own value, not the planted one


def test_an_answer_that_depends_on_the_convention_must_pin_one(tmp_path, capsys):
    """Unpinned, it used to be a harness fault (numpy[keras] against torch), or with --frameworks
    numpy,torch a pass judged in the torch convention against Keras' printed weights."""
    path = tmp_path / "key.toml"
    path.write_text(key_text({"week4": WEEK4.replace('convention = "keras"\n', ""), "good": tiny(
        "loss", "step = 0")}))
    (tmp_path / "tiny-adam.toml").write_text(ADAM_SCENARIO)
    assert main(["check", str(path), "--frameworks", "numpy,torch"]) == 2
    captured = capsys.readouterr()
    [error] = [line for line in captured.err.splitlines() if line.startswith("nn-parity: error:")]
    assert "answer[week4].convention" in error and "Adam epsilon placement" in error and "key.toml" in error
    assert "| good" in captured.out and "UNANSWERED" in captured.out  # the other answer is still computed


def test_a_pinned_convention_is_the_one_computed_and_the_other_framework_sits_out(tmp_path):
    results = check(tmp_path, {"keras": tiny("params", 'convention = "keras"'),
                               "torch": tiny("params", 'convention = "torch"')})
    keras, torch = results["keras"], results["torch"]
    assert keras.verdict == torch.verdict == "unanswered", (keras.message, torch.message)
    assert keras.by_framework["torch"].startswith("skipped: it cannot compute convention 'keras'")
    assert torch.by_framework["keras"].startswith("skipped: it cannot compute convention 'torch'")
    assert isinstance(keras.by_framework["keras"], dict) and isinstance(torch.by_framework["torch"], dict)
    w_keras, w_torch = keras.by_framework["numpy"]["w"], torch.by_framework["numpy"]["w"]
    assert float(np.max(np.abs(w_keras - w_torch))) > 1e-6  # the conventions really differ here
    # each framework agrees with the reference in its own convention
    assert keras.spread < 1e-12 and torch.spread < 1e-12


def test_before_the_first_update_no_convention_is_needed(tmp_path):
    """Step 0's loss does not depend on the optimizer: every implementation computes it, unpinned."""
    result = check(tmp_path, {"loss0": tiny("loss", "step = 0")})["loss0"]
    assert result.verdict == "unanswered", result.message
    assert all(isinstance(v, dict) for v in result.by_framework.values()), result.by_framework


def test_dtype_float32_computes_in_float32_and_fills_as_numpy_prints_float32(tmp_path, capsys):
    results = check(tmp_path, {"f32": tiny("params", 'convention = "torch"\ndtype = "float32"'),
                               "f64": tiny("params", 'convention = "torch"')})
    w32, w64 = results["f32"].parts[0].computed, results["f64"].parts[0].computed
    np.testing.assert_array_equal(w32, w32.astype(np.float32))
    assert not np.array_equal(w64, w64.astype(np.float32))
    assert results["f32"].parts[0].computed_text() == str(w32.astype(np.float32))
    out = tmp_path / "filled.toml"
    assert main(["answers", str(tmp_path / "key.toml"), "--out", str(out)]) == 0
    filled = {e.id: e for e in load_key(out).entries}
    assert all(isinstance(e, Answer) and e.expected is not None for e in filled.values())
    assert {check_entry(e).verdict for e in filled.values()} == {"correct"}


def test_convention_and_dtype_are_validated(tmp_path):
    (tmp_path / "tiny-adam.toml").write_text(ADAM_SCENARIO)
    path = tmp_path / "key.toml"
    path.write_text(key_text({
        "bad-convention": tiny("params", 'convention = "jax"'),
        "bad-dtype": tiny("params", 'convention = "keras"\ndtype = "float16"'),
        "forward-only": 'compute = "scenario"\nscenario = "calculate-z-example"\nquantity = "output"\n'
                        'convention = "keras"',
        "pinned": tiny("params", 'convention = "keras"'),
    }))
    entries = {e.id: e for e in load_key(path).entries}
    for answer_id, field in (("bad-convention", "convention"), ("bad-dtype", "dtype"),
                             ("forward-only", "convention")):
        entry = entries[answer_id]
        assert not isinstance(entry, Answer) and entry.error.field == f"answer[{answer_id}].{field}"
    pinned = entries["pinned"]
    assert isinstance(pinned, Answer) and isinstance(pinned.question, ScenarioQuestion)
    assert pinned.question.scenario.training_spec.optimizer.options["convention"] == "keras"
