"""Notebooks that will not "Run All" from a fresh kernel (``harness.answers.notebook.run_all_problems``):
a top-level ``sys.exit``, an error saved in a cell the audit skips, a name used before a later cell
defines it. Reported beside the verdict, by ``check`` (a key reading the notebook) and ``audit``
(its list of what it did not run); the verdict itself is unchanged. Real ``.ipynb`` files, written
with nbformat."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from harness.answers.key_file import load_key
from harness.answers.notebook import read_notebook, run_all_problems, select_code
from harness.answers.verdicts import check_entry
from harness.commands.cli import main

ROOT = Path(__file__).resolve().parents[1]
BACKWARD = '''import numpy as np

def backward(params, X, y):
    W1, b1, W2, b2 = (params[k] for k in ("layers.0.kernel", "layers.0.bias", "layers.1.kernel", "layers.1.bias"))
    Z1 = X @ W1 + b1
    A1 = np.maximum(Z1, 0)
    A2 = 1 / (1 + np.exp(-(A1 @ W2 + b2)))
    dZ2 = (A2 - y) / len(X)
    dZ1 = dZ2 @ W2.T * (Z1 > 0)
    return {"w1": X.T @ dZ1, "b1": dZ1.sum(0), "w2": A1.T @ dZ2, "b2": dZ2.sum(0)}
'''
SIGMOID_OUT = "[[0.99966465]\n [0.99752738]]\n"


def stdout(text: str) -> nbformat.NotebookNode:
    return new_output("stream", name="stdout", text=text)


def error(ename: str, evalue: str) -> nbformat.NotebookNode:
    return new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def write(path: Path, *cells: nbformat.NotebookNode) -> Path:
    nbformat.write(new_notebook(cells=[new_markdown_cell("# lab"), *cells]), str(path))
    return path


def exits(path: Path) -> Path:
    return write(path,
                 new_code_cell(BACKWARD, execution_count=1),
                 new_code_cell("import sys\nsys.exit(0)", execution_count=2),
                 new_code_cell("print(sigmoid(z))", execution_count=3, outputs=[stdout(SIGMOID_OUT)]))


def skipped_error(path: Path) -> Path:
    return write(path,
                 new_code_cell(BACKWARD, execution_count=1),
                 new_code_cell("plt.plot(history)", execution_count=2,
                               outputs=[error("NameError", "name 'plt' is not defined")]),
                 new_code_cell("print(sigmoid(z))", execution_count=3, outputs=[stdout(SIGMOID_OUT)]))


def out_of_order(path: Path) -> Path:
    return write(path,
                 new_code_cell(BACKWARD, execution_count=2),
                 new_code_cell("print(sigmoid(z))", execution_count=3, outputs=[stdout(SIGMOID_OUT)]),
                 new_code_cell("z = np.array([[8], [6]])\nsigmoid = lambda v: 1 / (1 + np.exp(-v))",
                               execution_count=1))


def clean(path: Path) -> Path:
    return write(path,
                 new_code_cell(BACKWARD, execution_count=1),
                 new_code_cell("z = np.array([[8], [6]])\nsigmoid = lambda v: 1 / (1 + np.exp(-v))\n"
                               "def later():\n    return undefined_until_called\n", execution_count=2),
                 new_code_cell("print(sigmoid(z))", execution_count=3, outputs=[stdout(SIGMOID_OUT)]),
                 new_code_cell("undefined_until_called = 1\nsquares = [i * i for i in range(3)]", execution_count=4))


FAULTS = {  # notebook -> what run_all_problems says
    "exits": (exits, ["cell 3 (In [2]): line 2: sys.exit(0) ends Run All there (the cells after it do not run)"]),
    "skipped-error": (skipped_error, ["cell 3 (In [2]): its saved output is an error (NameError: name 'plt' is not "
                                      "defined): Run All stops there"]),
    "out-of-order": (out_of_order, ["cell 3 (In [3]): line 1 uses 'sigmoid' before cell 4 (In [1]) defines it (it "
                                    "ran out of order)",
                                    "cell 3 (In [3]): line 1 uses 'z' before cell 4 (In [1]) defines it (it ran out "
                                    "of order)"]),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_is_found(tmp_path, fault):
    make, expected = FAULTS[fault]
    nb = read_notebook(make(tmp_path / f"{fault}.ipynb"))
    assert run_all_problems(nb) == expected
    selection = select_code(nb)
    assert selection.run_all == expected
    assert [f"will not Run All: {p}" for p in expected] == selection.skipped[-len(expected):]


def test_a_notebook_that_runs_all_has_no_problem(tmp_path):
    """A name used inside a function body is looked up when it is called, a comprehension's variable is
    its own: neither is reported."""
    assert run_all_problems(read_notebook(clean(tmp_path / "clean.ipynb"))) == []


def test_the_exit_is_left_out_as_ending_the_run_not_as_showing_a_value(tmp_path):
    selection = select_code(read_notebook(exits(tmp_path / "exits.ipynb")))
    assert "cell 3 (In [2]): left out line 2 (ends the notebook's run)" in selection.skipped


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_check_reports_it_beside_the_verdict(tmp_path, fault):
    make, expected = FAULTS[fault]
    make(tmp_path / "lab.ipynb")
    key = tmp_path / "key.toml"
    key.write_text('title = "t"\n[[answer]]\nid = "s"\ncompute = "activation"\nfunction = "sigmoid"\n'
                   'z = [[8], [6]]\nexpected = { notebook = "lab.ipynb", cell = 3 }\n')
    [entry] = load_key(key).entries
    result = check_entry(entry, frameworks=("numpy",))
    assert result.verdict == "correct"  # the printed value is right: the warning is beside it
    [warning] = [w for w in result.warnings if "Run All" in w]
    assert warning == ("lab.ipynb will not Run All from a fresh kernel, so its saved outputs may not be what it "
                       "computes: " + "; ".join(expected))


@pytest.mark.slow
def test_audit_lists_it_beside_the_verdict(tmp_path, capsys):
    notebook = exits(tmp_path / "exits.ipynb")
    scenario = ROOT / "scenarios" / "keys" / "audits" / "xor-relu-sigmoid.toml"
    code = main(["audit", str(notebook), "--function", "backward", "--scenario", str(scenario)])
    out = capsys.readouterr().out
    assert "will not Run All: cell 3 (In [2]): line 2: sys.exit(0) ends Run All there" in out, out
    assert "shows a value" not in out
    assert code == 0  # the verdict stays the audit's: this backward is the right cross-entropy gradient
