"""Expected values read from a notebook's saved outputs (issue 12, §2): ``expected = { notebook =
"lab.ipynb", cell = 12 }`` (or ``id``, ``tag``), read by the same strict printed-array reader as a
pasted value. The notebooks are real ``.ipynb`` files, written with nbformat into tmp_path."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from harness.answers.key_file import Answer, Malformed, load_key
from harness.answers.verdicts import check_entry
from harness.commands.cli import main

SIGMOID = 'compute = "activation"\nfunction = "sigmoid"\nz = [[8], [6]]'
DENSE = 'compute = "dense"\nX = [[1, 2], [3, -1]]\nw = [[2], [-1]]\nb = [[1], [1]]'
GRADIENT = 'compute = "gradient"\nX = [[1, 2], [3, 1], [1, 1]]\ny = [[4.6], [6.1], [3.1]]\nw = [[1], [1]]\n' \
           'b = [0]\nloss = "mse"'


def stdout(text: str) -> nbformat.NotebookNode:
    return new_output("stream", name="stdout", text=text)


def result(text: str, count: int) -> nbformat.NotebookNode:
    return new_output("execute_result", data={"text/plain": text}, execution_count=count)


def write_lab(path: Path) -> Path:
    """A solution notebook as the students see it: printed and displayed values, a cell that was never
    run (no output), a cell whose printed value is wrong, a cell that printed text."""
    nb = new_notebook(cells=[
        new_markdown_cell("# Maths of deep learning"),
        new_code_cell("print(sigmoid(z))", execution_count=1, outputs=[stdout("[[0.99966465]\n [0.99752738]]\n")]),
        new_code_cell("X @ w + b", execution_count=2, id="dense-cell",
                      outputs=[result("array([[1],\n       [8]])", 2)]),
        new_code_cell("print(dw)", execution_count=3, metadata={"tags": ["dw"]},
                      outputs=[stdout("[[-6.        ]\n [-4.26666667]]\n")]),
        new_code_cell("db", execution_count=4, metadata={"tags": ["db"]},
                      outputs=[result("np.float64(-3.1999999999999993)", 4)]),
        new_code_cell("model.fit(X, y)", execution_count=5, outputs=[]),
        new_code_cell("print(sigmoid(z))", execution_count=6, outputs=[stdout("[[0.99966465]\n [0.99752748]]\n")]),
        new_code_cell("print('the weights are', w)", execution_count=7, outputs=[stdout("the weights are [[1]]\n")]),
    ])
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


GOOD = {
    "by-count": f'{SIGMOID}\nexpected = {{ notebook = "lab.ipynb", cell = 1 }}',
    "by-id": f'{DENSE}\nexpected = {{ notebook = "lab.ipynb", id = "dense-cell" }}',
    "by-tag": f'{GRADIENT}\nexpected = {{ w = {{ notebook = "lab.ipynb", tag = "dw" }}, '
              f'b = {{ notebook = "lab.ipynb", tag = "db" }} }}',
    "wrong-in-notebook": f'{SIGMOID}\nexpected = {{ notebook = "lab.ipynb", cell = 6 }}',
}

# id -> (fields, the field named, words the one-line error must contain)
BAD = {
    "no-output": (f'{SIGMOID}\nexpected = {{ notebook = "lab.ipynb", cell = 5 }}', "expected.cell",
                  ["lab.ipynb, In [5] has none", "saved output"]),
    "no-such-cell": (f'{SIGMOID}\nexpected = {{ notebook = "lab.ipynb", cell = 99 }}', "expected.cell",
                     ["lab.ipynb", "no such cell"]),
    "no-such-tag": (f'{SIGMOID}\nexpected = {{ notebook = "lab.ipynb", tag = "nowhere" }}', "expected.tag",
                    ["lab.ipynb", "no such cell"]),
    "text-not-an-array": (f'{SIGMOID}\nexpected = {{ notebook = "lab.ipynb", cell = 7 }}', "expected",
                          ["lab.ipynb, In [7]", "the weights are"]),
    "two-selectors": (f'{SIGMOID}\nexpected = {{ notebook = "lab.ipynb", cell = 1, tag = "dw" }}', "expected.cell",
                      ["exactly one of"]),
    "no-selector": (f'{SIGMOID}\nexpected = {{ notebook = "lab.ipynb" }}', "expected.cell", ["exactly one of"]),
    "missing-notebook": (f'{SIGMOID}\nexpected = {{ notebook = "nope.ipynb", cell = 1 }}', "expected.notebook",
                         ["nope.ipynb"]),
    "not-a-notebook": (f'{SIGMOID}\nexpected = {{ notebook = "broken.ipynb", cell = 1 }}', "expected.notebook",
                       ["broken.ipynb", "nbformat"]),
    "escapes-the-folder": (f'{SIGMOID}\nexpected = {{ notebook = "../outside.ipynb", cell = 1 }}',
                           "expected.notebook", ["inside the key's folder"]),
    "absolute": (f'{SIGMOID}\nexpected = {{ notebook = "/tmp/lab.ipynb", cell = 1 }}', "expected.notebook",
                 ["relative to the key's folder"]),
    "not-ipynb": (f'{SIGMOID}\nexpected = {{ notebook = "lab.py", cell = 1 }}', "expected.notebook", [".ipynb"]),
    "wrong-size": (f'{DENSE}\nexpected = {{ notebook = "lab.ipynb", cell = 4 }}', "expected",
                   ["lab.ipynb, In [4]", "2 numbers"]),
    "whole-table": (f'{GRADIENT}\nexpected = {{ notebook = "lab.ipynb", cell = 3 }}', "expected.notebook",
                    ["one printed value per parameter"]),
}


def key_text(answers: dict[str, str]) -> str:
    body = "".join(f'\n[[answer]]\nid = "{i}"\n{fields}\n' for i, fields in answers.items())
    return f'title = "notebook key"\n[defaults]\nprinted_precision = 8\n{body}'


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    """keys/key.toml beside keys/lab.ipynb, a broken notebook, and a real notebook outside the folder."""
    folder = tmp_path / "keys"
    write_lab(folder / "lab.ipynb")
    write_lab(tmp_path / "outside.ipynb")
    (folder / "broken.ipynb").write_text("{ not json")
    return folder


def test_expected_values_are_read_from_the_notebook_outputs(key_dir):
    path = key_dir / "key.toml"
    path.write_text(key_text(GOOD))
    entries = {e.id: e for e in load_key(path).entries}
    assert all(isinstance(e, Answer) for e in entries.values()), [e for e in entries.values()
                                                                   if isinstance(e, Malformed)]
    by_count = entries["by-count"]
    assert isinstance(by_count, Answer) and by_count.expected is not None
    np.testing.assert_array_equal(by_count.expected["value"].values, [[0.99966465], [0.99752738]])
    assert by_count.expected_from == {"value": "lab.ipynb, In [1]"}
    by_id = entries["by-id"]
    assert isinstance(by_id, Answer) and by_id.expected is not None
    assert by_id.expected["value"].style.notation == "integer"  # array([[1], [8]]): exact
    by_tag = entries["by-tag"]
    assert isinstance(by_tag, Answer) and by_tag.expected is not None
    assert float(by_tag.expected["b"].values) == -3.1999999999999993
    assert by_tag.expected_from == {"w": "lab.ipynb, cell tag 'dw'", "b": "lab.ipynb, cell tag 'db'"}


@pytest.mark.parametrize("answer_id", list(BAD), ids=list(BAD))
def test_a_bad_notebook_reference_is_malformed_naming_key_field_and_notebook(key_dir, answer_id):
    fields, field, words = BAD[answer_id]
    path = key_dir / "key.toml"
    path.write_text(key_text({"good": GOOD["by-count"], answer_id: fields}))
    entries = {e.id: e for e in load_key(path).entries}
    assert isinstance(entries["good"], Answer)
    entry = entries[answer_id]
    assert isinstance(entry, Malformed), entry
    line = entry.error.one_line()
    assert entry.error.file == str(path) and entry.error.field == f"answer[{answer_id}].{field}", line
    for word in words:
        assert word in line, line


def test_a_symbolic_link_out_of_the_key_folder_is_refused(key_dir):
    (key_dir / "linked.ipynb").symlink_to(key_dir.parent / "outside.ipynb")
    path = key_dir / "key.toml"
    path.write_text(key_text({"linked": f'{SIGMOID}\nexpected = {{ notebook = "linked.ipynb", cell = 1 }}'}))
    [entry] = load_key(path).entries
    assert isinstance(entry, Malformed) and entry.error.field == "answer[linked].expected.notebook"


def test_a_notebook_in_a_subfolder_of_the_key_is_found_from_any_working_directory(key_dir, tmp_path, monkeypatch):
    write_lab(key_dir / "notebooks" / "week1.ipynb")
    path = key_dir / "key.toml"
    path.write_text(key_text({"sub": f'{SIGMOID}\nexpected = {{ notebook = "notebooks/week1.ipynb", cell = 1 }}'}))
    monkeypatch.chdir(tmp_path)
    [entry] = load_key(path).entries
    assert isinstance(entry, Answer) and entry.expected_from == {"value": "notebooks/week1.ipynb, In [1]"}


@pytest.mark.slow  # every answer computed in the reference, Keras and torch
def test_check_judges_notebook_outputs_and_reports_the_cell_without_output(key_dir, capsys):
    path = key_dir / "key.toml"
    path.write_text(key_text({**GOOD, "no-output": BAD["no-output"][0]}))
    report = key_dir / "report.json"
    assert main(["check", str(path), "--json", str(report)]) == 2  # a malformed answer: the key is bad input
    captured = capsys.readouterr()
    [error] = [line for line in captured.err.splitlines() if line.startswith("nn-parity: error:")]
    assert "answer[no-output].expected.cell" in error and "lab.ipynb, In [5] has none" in error
    assert "Traceback" not in captured.err
    answers = {a["id"]: a for a in json.loads(report.read_text())["answers"]}
    assert {i: a["verdict"] for i, a in answers.items()} == {
        "by-count": "correct", "by-id": "correct", "by-tag": "correct", "wrong-in-notebook": "wrong",
        "no-output": "malformed"}
    wrong = answers["wrong-in-notebook"]
    assert wrong["computed_text"] == "[[0.99966465]\n [0.99752738]]"  # the correct value, as the notebook prints it
    assert wrong["expected_from"] == "lab.ipynb, In [6]" and wrong["max_abs_diff"] == pytest.approx(1e-7, rel=0.05)
    assert answers["by-tag"]["expected_from"] == {"w": "lab.ipynb, cell tag 'dw'", "b": "lab.ipynb, cell tag 'db'"}
    # the terminal table shows the correct value of the wrong answer
    [row] = [line for line in captured.out.splitlines() if line.startswith("| wrong-in-notebook")]
    assert "[[0.99966465] [0.99752738]]" in row


@pytest.mark.slow
def test_a_wrong_value_in_the_notebook_output_is_wrong_not_malformed(key_dir):
    path = key_dir / "key.toml"
    path.write_text(key_text({"wrong-in-notebook": GOOD["wrong-in-notebook"]}))
    [entry] = load_key(path).entries
    checked = check_entry(entry)
    assert checked.verdict == "wrong" and checked.expected_from == {"value": "lab.ipynb, In [6]"}
    assert checked.parts[0].computed_text() == "[[0.99966465]\n [0.99752738]]"
