"""A wrong answer names its wrong element: the index, both values, the difference and that
element's own allowance, never the largest element's allowance beside another's difference."""
from __future__ import annotations

import json
import re

import pytest

from harness.answers.key_file import load_key
from harness.answers.output import summary_table
from harness.answers.verdicts import check_entry
from harness.commands.cli import main

# 1 printed to 3 significant digits allows 5e-3; 0.001 printed as 1.06e-03 allows 5e-6 and is 6e-5 off
MIXED = ('title = "t"\n[[answer]]\nid = "mixed"\ncompute = "dense"\nX = [[1.0], [0.001]]\nw = [[1.0]]\n'
         'expected = """\n[[1.00e+00]\n [1.06e-03]]\n"""\n')
GRADIENT = ('title = "t"\n[[answer]]\nid = "grad"\ncompute = "gradient"\nX = [[1, 2], [3, 1], [1, 1]]\n'
            'y = [[4.6], [6.1], [3.1]]\nw = [[1], [1]]\nb = [0]\nloss = "mse"\n'
            'expected = { w = "[[-6.        ]\\n [-4.26666677]]", b = "-3.2" }\n')


def result_of(tmp_path, text):
    path = tmp_path / "key.toml"
    path.write_text(text)
    [entry] = load_key(path).entries
    return check_entry(entry, frameworks=("numpy",))


def test_the_wrong_element_is_named_with_its_own_allowance(tmp_path):
    result = result_of(tmp_path, MIXED)
    assert result.verdict == "wrong"
    [part] = result.parts
    element = part.worst()
    assert element is not None and element.index == (1, 0)
    assert element.computed == 0.001 and element.expected == 0.00106
    assert element.diff == pytest.approx(6e-5) and element.allowed == pytest.approx(5e-6 + 1e-14, rel=1e-6)
    assert result.message.startswith("element [1, 0] = 0.001 computed, 0.00106 printed: differs by 6.00e-05, beyond "
                                     "its allowance 5.00e-06 (1 of 2 elements wrong)"), result.message
    row = summary_table([result]).loc[0]
    assert row["difference"] == "6.00e-05 at [1, 0]"
    assert row["tolerance"] == "5.00e-06 at [1, 0] (printed 5.0e-06)"  # not the first element's 5.00e-03
    assert row["note"].startswith("element [1, 0] = 0.001 computed")


def test_a_parameter_table_names_the_parameter_and_its_element(tmp_path):
    result = result_of(tmp_path, GRADIENT)
    assert result.verdict == "wrong"
    # the computed value's last digit is the summation order's: not asserted
    assert re.fullmatch(r"w\[1, 0\] = -4\.26666666666666\d computed, -4\.26666677 printed: differs by 1\.03e-07, "
                        r"beyond its allowance 5\.00e-09 \(1 of 2 elements wrong\)", result.message), result.message
    row = summary_table([result]).loc[0]
    assert row["difference"].startswith("w = 1.03e-07 at [1, 0]; b = ")  # b is right: its rounding is not asserted


def test_a_correct_answer_keeps_its_largest_difference(tmp_path):
    result = result_of(tmp_path, MIXED.replace("1.06e-03", "1.00e-03"))
    assert result.verdict == "correct" and result.message == ""
    assert summary_table([result]).loc[0, "difference"] == "0.00e+00"


@pytest.mark.slow
def test_the_check_command_reports_the_wrong_element_in_every_output(tmp_path, capsys):
    key = tmp_path / "key.toml"
    key.write_text(MIXED)
    out, md = tmp_path / "out.json", tmp_path / "out.md"
    assert main(["check", str(key), "--no-cache", "--json", str(out), "--markdown", str(md)]) == 1
    stdout = capsys.readouterr().out
    assert "6.00e-05 at [1, 0]" in stdout and "5.00e-06 at [1, 0]" in stdout
    [answer] = json.loads(out.read_text())["answers"]
    assert answer["worst_element"]["index"] == [1, 0] and answer["worst_element"]["elements_beyond"] == 1
    assert answer["implementations"] == {"numpy": "ok", "keras": "ok", "torch": "ok"}
    assert "element [1, 0] = 0.001 computed, 0.00106 printed" in md.read_text()
