"""Checking keys: planted wrong answers caught with the correct value, answers right to the
printed digits accepted, implausible and degenerate answers, rounded inputs, filling, bad keys."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.answers.key_file import load_key
from harness.answers.output import NOTE_WIDTH, note_text, summary_table
from harness.answers.verdicts import AnswerResult, _agreement, check_entry
from harness.commands.cli import main
from harness.spec.catalogue import catalogue
from harness.spec.printed import parse_printed
from harness.spec.tolerance import DEFAULT_TOLERANCES

pytestmark = pytest.mark.slow  # every answer is computed in the reference, Keras and torch

NETWORK = """X = [[0.29, 0.11, 0.80]]
layers = [
  { w = [[0.3, 0.6], [0.8, 0.4], [0.1, 0.5]], b = [1.0, 1.0], activation = "sigmoid" },
  { w = [[0.1, 0.5], [0.7, 0.2]], b = [1.0, 1.0], activation = "softmax" },
]"""

# id -> (answer fields without expected, a wrong expected, the correct value as the key prints it)
PLANTED = {
    "dense": ('compute = "dense"\nX = [[1, 2], [2, 1]]\nw = [[1], [1]]\nb = [[0], [0]]',
              '"""\n[[3]\n [4]]\n"""', "[[3]\n [3]]"),
    "sigmoid": ('compute = "activation"\nfunction = "sigmoid"\nz = [[8], [6]]',
                '"""\n[[0.99966465]\n [0.99752748]]\n"""', "[[0.99966465]\n [0.99752738]]"),
    "network": (f'compute = "network"\n{NETWORK}', '"[[0.52647396 0.47352604]]"', "[[0.52647369 0.47352631]]"),
    "loss": ('compute = "loss"\nloss = "mse"\ny_true = [1.0, 2.0]\ny_pred = [1.5, 2.5]', "0.35", "0.25"),
    "gradient": ('compute = "gradient"\nX = [[1, 2], [3, 1], [1, 1]]\ny = [[4.6], [6.1], [3.1]]\nw = [[1], [1]]\n'
                 'b = [0]\nloss = "mse"', '{ w = "[[-6.        ]\\n [-4.26666667]]", b = "-3.3" }', "-3.2"),
    "train": ('compute = "train"\nX = [[2], [3], [5]]\ny = [[7], [10], [16]]\nw = [[1]]\nb = [0]\nloss = "mse"\n'
              'optimizer = { name = "sgd", learning_rate = 0.01 }\nsteps = 3', '{ w = "2.29573784", b = "0.34732356" }',
              "2.29573748"),
    "scenario": ('compute = "scenario"\nscenario = "softmax-classifier"\nquantity = "output"\nstep = 0',
                 '"array([[9.82e-01, 1.80e-02],\\n[1.80e-02, 9.82e-01],\\n[6.14e-05, 1.00e+00]])"',
                 "array([[9.82e-01, 1.80e-02],\n [1.80e-02, 9.82e-01],\n [6.14e-06, 1.00e+00]])"),
}


def key_text(answers: dict[str, str], header: str = "") -> str:
    body = "".join(f'\n[[answer]]\nid = "{i}"\n{fields}\n' for i, fields in answers.items())
    return f'title = "test key"\n{header}\n{body}'


def check(tmp_path, text: str, name: str = "key.toml") -> dict[str, AnswerResult]:
    path = tmp_path / name
    path.write_text(text)
    return {e.id: check_entry(e) for e in load_key(path).entries}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    answers = {i: f"{fields}\nexpected = {wrong}" for i, (fields, wrong, _) in PLANTED.items()}
    return check(tmp_path_factory.mktemp("planted"), key_text(answers))


@pytest.mark.parametrize("answer_id", list(PLANTED), ids=list(PLANTED))
def test_planted_wrong_answer_is_caught_with_the_correct_value(planted, answer_id):
    result = planted[answer_id]
    assert result.verdict == "wrong"
    correct = PLANTED[answer_id][2]
    printed = [" ".join(p.computed_text().split()) for p in result.parts if p.expected is not None and not p.ok]
    assert " ".join(correct.split()) in printed, printed


RIGHT_TO_PRINTED_DIGITS = {
    # computed 0.9996646498695336 / 0.9975273768433653: the last printed digit rounds
    "sigmoid-8-decimals": ('compute = "activation"\nfunction = "sigmoid"\nz = [[8], [6]]',
                           '"""\n[[0.99966465]\n [0.99752738]]\n"""'),
    "sigmoid-2-decimals-trimmed": ('compute = "activation"\nfunction = "sigmoid"\nz = [[-5], [1], [7]]',
                                   '"""\narray([[0.01],\n[0.73],\n[1. ]])\n"""'),
    "softmax-3-significant": ('compute = "dense"\nX = [[1, 2], [3, 4], [5, 6]]\nw = [[1, 3], [2, 4]]\n'
                              'b = [-10, -20]\nactivation = "softmax"',
                              '"array([[9.82e-01, 1.80e-02],\\n[1.80e-02, 9.82e-01],\\n[6.14e-06, 1.00e+00]])"'),
    "list-4-decimals": (f'compute = "network"\n{NETWORK}', '"[0.5265, 0.4735]"'),
    "float-repr": ('compute = "gradient"\nX = [[1, 2], [3, 1], [1, 1]]\ny = [[4.6], [6.1], [3.1]]\nw = [[1], [1]]\n'
                   'b = [0]\nloss = "mse"', '{ w = "[[-6.        ]\\n [-4.26666667]]", b = "-3.1999999999999993" }'),
    "np-float64-loss": ('compute = "loss"\nloss = "mse"\ny_true = [0.1, 0.2, 0.3]\ny_pred = [0.4, 0.5, 0.7]',
                        '"np.float64(0.11333333333333334)"'),
    "integers-exact": ('compute = "activation"\nfunction = "relu"\nz = [[1], [-8]]', '"[[1]\\n [0]]"'),
}


@pytest.mark.parametrize("answer_id", list(RIGHT_TO_PRINTED_DIGITS), ids=list(RIGHT_TO_PRINTED_DIGITS))
def test_values_right_to_the_printed_digits_pass(tmp_path, answer_id):
    fields, expected = RIGHT_TO_PRINTED_DIGITS[answer_id]
    result = check(tmp_path, key_text({answer_id: f"{fields}\nexpected = {expected}"}))[answer_id]
    assert result.verdict == "correct", result.parts[0].rule


def test_one_digit_beyond_the_printed_precision_is_wrong(tmp_path):
    # sigmoid(6) = 0.99752737684...: 0.99752738 is right at 8 decimals, 0.99752739 is not
    fields = 'compute = "activation"\nfunction = "sigmoid"\nz = [[6]]'
    results = check(tmp_path, key_text({"right": f'{fields}\nexpected = "[[0.99752738]]"',
                                        "off": f'{fields}\nexpected = "[[0.99752739]]"'}))
    assert results["right"].verdict == "correct"
    assert results["off"].verdict == "wrong"
    assert results["off"].parts[0].computed_text() == "[[0.99752738]]"


IMPLAUSIBLE = {
    "probability-above-1": ('compute = "activation"\nfunction = "sigmoid"\nz = [[8], [6]]', '[[1.2], [0.9]]',
                            "outside [0, 1]"),
    "softmax-rows-not-1": ('compute = "activation"\nfunction = "softmax"\nz = [[1, 2], [3, 4]]',
                           '[[0.2, 0.7], [0.27, 0.73]]', "sum to"),
    "accuracy-110%": ('compute = "network"\noutput = "accuracy"\nX = [[0, 0], [1, 1]]\ny = [0, 1]\n'
                      'layers = [{ w = [[1], [1]], b = [-1], activation = "sigmoid" }]', "1.10", "110%"),
    "negative-loss": ('compute = "loss"\nloss = "mse"\ny_true = [1.0]\ny_pred = [2.0]', "-1.0", "negative"),
}


@pytest.mark.parametrize("answer_id", list(IMPLAUSIBLE), ids=list(IMPLAUSIBLE))
def test_impossible_expected_values_are_implausible(tmp_path, answer_id):
    fields, expected, why = IMPLAUSIBLE[answer_id]
    result = check(tmp_path, key_text({answer_id: f"{fields}\nexpected = {expected}"}))[answer_id]
    assert result.verdict == "implausible"
    assert why in result.message


def test_a_printed_nan_is_judged_like_a_lab_value_nan_wrong_against_a_number(tmp_path):
    """No special case for nan: the one comparison rule (nan matches only nan) judges it, in every
    implementation, as it judges a scenario's lab value."""
    fields = 'compute = "activation"\nfunction = "tanh"\nz = [[1]]\nexpected = "[[nan]]"'
    result = check(tmp_path, key_text({"nan": fields}))["nan"]
    assert result.verdict == "wrong", result.message
    assert result.parts[0].max_abs_diff == np.inf and result.parts[0].computed_text() == "[[0.76159416]]"


def test_softmax_over_an_axis_of_length_one_warns(tmp_path):
    fields = 'compute = "activation"\nfunction = "softmax"\naxis = 1\nz = [[1], [8]]\nexpected = "[[1.]\\n [1.]]"'
    result = check(tmp_path, key_text({"degenerate": fields}))["degenerate"]
    assert result.verdict == "correct"
    assert any("always 1" in w for w in result.warnings)


ROUNDED = ('compute = "gradient"\nX = [[1], [2], [3]]\ny = [[0.99], [3.00], [5.01]]\nw = [[0]]\nb = [0]\n'
           'loss = "mse"\nexpected = { w = "-14.69", b = "-6.00" }')


def test_rounded_inputs_widen_the_tolerance_by_the_propagated_uncertainty(tmp_path):
    results = check(tmp_path, key_text({"plain": ROUNDED, "rounded": ROUNDED + "\ninputs_rounded_to = { y = 2 }"}))
    assert results["plain"].verdict == "wrong"  # -14.68 from the rounded y, the notes print -14.69
    rounded = results["rounded"]
    assert rounded.verdict == "correct"
    w = rounded.parts[0]
    # d(dL/dw)/dy_i = -(2/3) x_i: the propagated half-width is (2/3)(1 + 2 + 3) * 0.005 = 0.02.
    # The derivatives are central differences of the reference (step 1e-6 * max(1, |y_i|)), not
    # autograd: exact for this linear map up to the rounding of the two re-runs (~1e-16 / 1e-6),
    # hence rtol 1e-6 rather than 1e-12 (the same as the scenario lab value's test).
    np.testing.assert_allclose(w.propagated_tol, [[0.02]], rtol=1e-6)
    assert "propagated" in w.rule


def test_rounded_inputs_propagate_through_any_optimizer(tmp_path):
    """The propagation re-runs the reference on perturbed inputs, so a train answer with Adam (not
    only SGD) gets its propagated part: positive and finite, element by element of each parameter."""
    fields = ('compute = "train"\nX = [[1], [2], [3]]\ny = [[0.99], [3.00], [5.01]]\nw = [[0]]\nb = [0]\n'
              'loss = "mse"\noptimizer = { name = "adam", learning_rate = 0.1, convention = "keras" }\nsteps = 2\n'
              'inputs_rounded_to = { y = 2 }\nexpected = { w = "0.2", b = "0.2" }')
    result = check(tmp_path, key_text({"adam": fields}))["adam"]
    assert result.warnings == ["torch skipped: it cannot compute convention 'keras' (its optimizer class computes "
                               "'torch')"]  # and no "no propagated tolerance"
    for part, shape in zip(result.parts, ((1, 1), (1,))):
        assert part.propagated_tol.shape == shape and "propagated" in part.rule
        assert np.all(np.isfinite(part.propagated_tol)) and np.all(part.propagated_tol > 0)


def test_an_infinite_expected_value_allows_nothing_extra(tmp_path):
    """atol + rtol*|expected| is taken over finite magnitudes: an expected inf does not make its own
    allowance infinite (it once judged [[inf], [-inf]] correct against a computed [[3], [3]])."""
    fields = PLANTED["dense"][0] + '\nexpected = "[[inf]\\n [-inf]]"'
    result = check(tmp_path, key_text({"infinite": fields}))["infinite"]
    assert result.verdict != "correct"
    assert result.verdict == "wrong"
    np.testing.assert_array_equal(result.parts[0].computed, [[3.0], [3.0]])
    assert np.all(np.isfinite(result.parts[0].tolerance))


def test_unanswered_answers_get_their_value_and_answers_fills_the_key(tmp_path, capsys):
    text = key_text({"1.1": PLANTED["dense"][0], "2.1": PLANTED["sigmoid"][0] + "  # keep this comment",
                     "3": PLANTED["gradient"][0]})
    path = tmp_path / "exercises.toml"
    path.write_text(text)
    assert main(["check", str(path)]) == 1
    out = tmp_path / "filled.toml"
    assert main(["answers", str(path), "--out", str(out)]) == 0
    filled = out.read_text()
    assert "# keep this comment" in filled and filled.index('id = "1.1"') < filled.index('id = "2.1"')
    results = {e.id: check_entry(e) for e in load_key(out).entries}
    assert {r.verdict for r in results.values()} == {"correct"}
    assert main(["check", str(out)]) == 0


def test_check_writes_markdown_and_the_documented_json(tmp_path, capsys):
    answers = {"ok": PLANTED["dense"][0] + '\nexpected = "[[3]\\n [3]]"',
               "bad": PLANTED["sigmoid"][0] + "\nexpected = " + PLANTED["sigmoid"][1]}
    path = tmp_path / "key.toml"
    path.write_text(key_text(answers))
    md, js = tmp_path / "report.md", tmp_path / "report.json"
    assert main(["check", str(path), "--markdown", str(md), "--json", str(js)]) == 1
    data = json.loads(js.read_text())
    by_id = {a["id"]: a for a in data["answers"]}
    assert by_id["ok"]["verdict"] == "correct" and by_id["bad"]["verdict"] == "wrong"
    for field in ("id", "verdict", "expected", "computed", "max_abs_diff", "tolerance"):
        assert field in by_id["bad"]
    assert by_id["bad"]["max_abs_diff"] == pytest.approx(1e-7, rel=0.05)
    report = md.read_text()
    assert "correct value, printed as the key prints it" in report and "[[0.99966465]\n [0.99752738]]" in report


MALFORMED = {
    "unknown-kind": ('compute = "integral"\nX = [[1]]', "answer[unknown-kind].compute"),
    "missing-input": ('compute = "dense"\nX = [[1, 2]]', "answer[missing-input].w"),
    "shapes-do-not-multiply": ('compute = "dense"\nX = [[1, 2]]\nw = [[1], [2], [3]]',
                               "answer[shapes-do-not-multiply].w"),
    "unparseable-printed": ('compute = "activation"\nfunction = "relu"\nz = [[1]]\nexpected = "about one"',
                            "answer[unparseable-printed].expected"),
    "ragged": ('compute = "activation"\nfunction = "relu"\nz = [[1, 2], [3]]', "answer[ragged].z"),
    "expected-wrong-size": ('compute = "activation"\nfunction = "relu"\nz = [[1], [2]]\nexpected = [1, 2, 3]',
                            "answer[expected-wrong-size].expected"),
    "unknown-parameter": ('compute = "gradient"\nX = [[1]]\ny = [[1]]\nw = [[1]]\nloss = "mse"\n'
                          'expected = { w = 1, b = 2 }', "answer[unknown-parameter].expected.b"),
    "unknown-scenario": ('compute = "scenario"\nscenario = "no-such-scenario"\nquantity = "loss"',
                         "answer[unknown-scenario].scenario"),
}


@pytest.mark.parametrize("answer_id", list(MALFORMED), ids=list(MALFORMED))
def test_a_malformed_answer_is_one_line_naming_id_and_field_and_the_others_are_checked(tmp_path, capsys, answer_id):
    fields, field = MALFORMED[answer_id]
    path = tmp_path / "key.toml"
    path.write_text(key_text({"good": PLANTED["dense"][0] + '\nexpected = "[[3]\\n [3]]"', answer_id: fields}))
    assert main(["check", str(path)]) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("nn-parity: error:")]
    assert len(errors) == 1 and field in errors[0] and "Traceback" not in captured.err
    assert "| good" in captured.out and "correct" in captured.out


def test_a_key_that_is_not_toml_is_one_error(tmp_path, capsys):
    path = tmp_path / "broken.toml"
    path.write_text('title = "x"\n[[answer]\nid = 1\n')
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "valid TOML" in err


def test_disagreeing_implementations_are_a_harness_fault_not_a_wrong_answer():
    result = AnswerResult(id="x", kind="dense", verdict="correct",
                          by_framework={"numpy": {"value": np.array([1.0])}, "keras": {"value": np.array([1.0])},
                                        "torch": {"value": np.array([1.0 + 1e-9])}})
    assert "disagree" in _agreement(result, DEFAULT_TOLERANCES["float64"])
    result.by_framework["torch"] = "crashed: RuntimeError: boom"
    assert "crashed" in _agreement(result, DEFAULT_TOLERANCES["float64"])


def test_rtol_atol_override_the_printed_precision(tmp_path):
    fields = 'compute = "activation"\nfunction = "sigmoid"\nz = [[0]]\nexpected = 0.51'
    results = check(tmp_path, key_text({"loose": fields + "\natol = 0.02", "printed": fields}))
    assert results["loose"].verdict == "correct"
    assert results["printed"].verdict == "wrong"
    assert parse_printed("0.51").half_unit == 0.005


def test_a_scenario_file_is_resolved_relative_to_the_key(tmp_path):
    source = next(p for p in catalogue() if p.stem == "softmax-classifier")
    (tmp_path / "classifier.toml").write_text(source.read_text())
    fields = ('compute = "scenario"\nscenario = "classifier.toml"\nquantity = "accuracy"\nstep = 0\n'
              "expected = 1.0")
    result = check(tmp_path, key_text({"file": fields}))["file"]
    assert result.verdict == "correct"  # the notes' W, b classify all three points right


def test_answers_on_a_complete_key_changes_nothing_and_names_what_it_left_implausible(tmp_path, capsys):
    key = Path(__file__).resolve().parent.parent / "scenarios" / "keys" / "004-homework.toml"
    out = tmp_path / "same.toml"
    assert main(["answers", str(key), "--out", str(out)]) == 1  # the homework's 110% accuracy is left as it is
    assert out.read_text() == key.read_text()
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nn-parity:")]
    assert line.startswith("nn-parity: problem 2 test accuracy: left implausible: an accuracy of 110%")


def test_answers_fills_the_missing_and_names_what_it_left_wrong_or_implausible(tmp_path, capsys):
    path = tmp_path / "key.toml"
    path.write_text(key_text({
        "missing": PLANTED["sigmoid"][0],
        "wrong": PLANTED["sigmoid"][0] + "\nexpected = " + PLANTED["sigmoid"][1],
        "implausible": IMPLAUSIBLE["negative-loss"][0] + "\nexpected = -1.0",
        "right": PLANTED["dense"][0] + '\nexpected = "[[3]\\n [3]]"'}))
    out = tmp_path / "filled.toml"
    assert main(["answers", str(path), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    reported = [line for line in captured.err.splitlines() if line.startswith("nn-parity:")]
    assert reported == [
        "nn-parity: wrong: left wrong: correct value [[0.99966465] [0.99752738]] (differs by 1.03e-07 at [1, 0], "
        "beyond its allowance 5.00e-09)",
        "nn-parity: implausible: left implausible: a loss of -1 is negative; every loss here is a mean of "
        "non-negative terms"]
    assert "missing: filled: [[0.99966465] [0.99752738]]" in captured.out
    filled = {e.id: check_entry(e).verdict for e in load_key(out).entries}
    assert filled == {"missing": "correct", "wrong": "wrong", "implausible": "implausible", "right": "correct"}


def test_answers_exits_0_when_everything_is_filled_or_right(tmp_path):
    path = tmp_path / "key.toml"
    path.write_text(key_text({"missing": PLANTED["sigmoid"][0],
                              "right": PLANTED["dense"][0] + '\nexpected = "[[3]\\n [3]]"'}))
    assert main(["answers", str(path), "--out", str(tmp_path / "filled.toml")]) == 0


FILL_PRECISION = {
    # [defaults], the answer's own fields -> what is written (numpy's print at that precision), and
    # whether a printed_precision line is added
    "numpy-default": ("", "", '"""\n[[0.99966465]\n [0.99752738]]\n"""', True),
    "defaults-4": ("[defaults]\nprinted_precision = 4", "", '"""\n[[0.9997]\n [0.9975]]\n"""', False),
    "defaults-8": ("[defaults]\nprinted_precision = 8", "", '"""\n[[0.99966465]\n [0.99752738]]\n"""', False),
    "answer-3": ("", "printed_precision = 3", '"""\n[[1.   ]\n [0.998]]\n"""', False),
}


@pytest.mark.parametrize("case", list(FILL_PRECISION), ids=list(FILL_PRECISION))
def test_answers_prints_at_the_keys_precision_and_does_not_repeat_a_default(tmp_path, case):
    defaults, own, written, adds_line = FILL_PRECISION[case]
    path = tmp_path / "key.toml"
    path.write_text(key_text({"s": PLANTED["sigmoid"][0] + ("\n" + own if own else "")}, header=defaults))
    out = tmp_path / "filled.toml"
    assert main(["answers", str(path), "--out", str(out)]) == 0
    filled = out.read_text()
    assert f"expected = {written}" in filled, filled
    assert filled.count("printed_precision") == (1 if adds_line else int(bool(defaults or own)))
    [entry] = load_key(out).entries
    assert check_entry(entry).verdict == "correct"


INTEGER_FILLS = {
    # numpy holds integer inputs through X @ w + b and ReLU as int arrays, and a predicted class as int64
    "dense-integers": (PLANTED["dense"][0], "[[3]\n [3]]"),
    "dense-floats": ('compute = "dense"\nX = [[1.0, 2.0], [2.0, 1.0]]\nw = [[1], [1]]\nb = [[0], [0]]',
                     "[[3.]\n [3.]]"),
    "relu-integers": ('compute = "activation"\nfunction = "relu"\nz = [[8], [-6]]', "[[8]\n [0]]"),
    "sigmoid-of-integers": ('compute = "activation"\nfunction = "sigmoid"\nz = [[0], [0]]', "[[0.5]\n [0.5]]"),
    "prediction": (f'compute = "network"\noutput = "prediction"\n{NETWORK}', "[0]"),
    "network-integers": ('compute = "network"\nX = [[1, 2]]\nlayers = [{ w = [[1], [2]], b = [1], activation = '
                         '"relu" }, { w = [[2, -1]], activation = "linear" }]', "[[12 -6]]"),
}


@pytest.mark.parametrize("case", list(INTEGER_FILLS), ids=list(INTEGER_FILLS))
def test_answers_writes_integers_as_integers(tmp_path, case):
    fields, written = INTEGER_FILLS[case]
    [result] = check(tmp_path, key_text({case: fields})).values()
    assert result.verdict == "unanswered", result.message
    assert result.parts[0].computed_text() == written


ADAM_TRAIN = ('compute = "train"\nX = [[2], [3], [5]]\ny = [[7], [10], [16]]\nw = [[1]]\nb = [0]\nloss = "mse"\n'
              'optimizer = { name = "adam", learning_rate = 0.1, convention = "keras" }\nsteps = 3')


def test_a_train_answer_with_adam_is_computed_in_its_pinned_convention(tmp_path):
    """Keras' Adam and the reference in the Keras convention compute the answer; torch.optim.Adam
    cannot compute the Keras convention, so it is skipped with the reason, not counted as a fault."""
    [result] = check(tmp_path, key_text({"adam": ADAM_TRAIN})).values()
    assert result.verdict == "unanswered", result.message
    assert isinstance(result.by_framework["numpy"], dict) and isinstance(result.by_framework["keras"], dict)
    assert result.by_framework["torch"].startswith("skipped: it cannot compute convention 'keras'")
    assert result.spread < 1e-15
    torch_key = key_text({"adam": ADAM_TRAIN.replace('"keras"', '"torch"')})
    [torch_result] = check(tmp_path, torch_key, "torch.toml").values()
    w_keras = result.by_framework["numpy"]["w"]
    w_torch = torch_result.by_framework["numpy"]["w"]
    assert torch_result.by_framework["keras"].startswith("skipped") and float(np.max(np.abs(w_keras - w_torch))) > 1e-9


def test_a_train_answer_with_adam_must_pin_a_convention(tmp_path, capsys):
    path = tmp_path / "key.toml"
    path.write_text(key_text({"adam": ADAM_TRAIN.replace(', convention = "keras"', "")}))
    assert main(["check", str(path)]) == 2
    [error] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nn-parity: error:")]
    assert "adam" in error and "optimizer.convention" in error and "Adam epsilon placement" in error


def test_the_terminal_table_shows_the_correct_value_of_a_wrong_answer(planted):
    table = summary_table(list(planted.values()))
    row = table.set_index("id").loc["sigmoid"]
    assert row["verdict"] == "WRONG" and row["correct value"] == "[[0.99966465] [0.99752738]]"
    assert table.set_index("id").loc["gradient"]["correct value"] == "w = [[-6. ] [-4.26666667]]; b = -3.2"


def test_the_terminal_table_never_cuts_a_note_mid_word():
    words = [f"word{i:03d}" for i in range(60)]  # 480 characters, no word a prefix of another
    result = AnswerResult(id="x", kind="dense", verdict="harness-fault", message=" ".join(words))
    note = summary_table([result]).loc[0, "note"]
    assert len(note) <= NOTE_WIDTH and note.endswith(" ...")
    shown = note.removesuffix(" ...").split(" ")
    assert shown == words[:len(shown)] and len(shown) > 10
    assert note_text("short note") == "short note"
