"""Notebooks read directly: real ``.ipynb`` fixtures (tests/notebooks/, built by build.py from
the 004 lab dump) audited as the student handed them in, saved outputs read as a student sees
them, and hostile notebooks refused with one line naming the file.

The sandbox tests run the notebook's code in its own process without the frameworks; the
tests marked slow run the whole audit (reference, Keras, torch, finite differences).
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import time
from pathlib import Path
from types import ModuleType

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from harness.answers.audit import Submission, initial_batch, load_submission, load_submission_adapter
from harness.answers.labels import labels_of
from harness.answers.notebook import cell_output, defines_only, read_notebook, select_code
from harness.answers.returned import Returned
from harness.answers.sandbox import NoSuchFunction, SubmissionAdapter
from harness.commands.cli import main
from harness.errors import BadInput
from harness.spec.catalogue import resolve
from tests.submissions import run_submission

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "tests" / "notebooks"
SCENARIO = str(ROOT / "scenarios" / "keys" / "audits" / "xor-relu-sigmoid.toml")
STUDENT = NOTEBOOKS / "student_004.ipynb"
FIXED = NOTEBOOKS / "student_004_fixed.ipynb"
FUNCTION_NB = NOTEBOOKS / "backward_004.ipynb"
ADAPTER = NOTEBOOKS / "adapter_004.py"
PARAMS = ["layers.0.kernel", "layers.0.bias", "layers.1.kernel", "layers.1.bias"]


def submit(submission: Submission, function: str, scenario, batch, *, timeout: float,
           submission_adapter: SubmissionAdapter | None = None) -> Returned:
    """What ``function`` of the submission returned on ``batch``, run in its own process, as the audit runs it."""
    params, X, y = batch
    return run_submission(submission.path, function, params, X, y, labels=labels_of(scenario), timeout=timeout,
                          cells=submission.cells, submission_adapter=submission_adapter)


def _module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = _module(NOTEBOOKS / "build.py", "notebook_fixtures")
BACKPROP = _module(ROOT / "scenarios" / "keys" / "audits" / "backprop_004.py", "backprop_004_trusted")


@pytest.fixture(scope="module")
def scenario():
    return resolve(SCENARIO)


@pytest.fixture(scope="module")
def batch(scenario):
    return initial_batch(scenario)


def _write(folder: Path, name: str, cells: list, **kwargs) -> Path:
    nb = new_notebook(cells=cells, **kwargs)
    path = folder / name
    path.write_text(nbformat.writes(nb))
    return path


# --- the fixtures ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BUILD.FIXTURES))
def test_the_committed_fixtures_are_what_the_builder_writes(name):
    assert (NOTEBOOKS / name).read_text() == BUILD.render(name)
    nbformat.validate(read_notebook(NOTEBOOKS / name))


def test_the_student_notebook_keeps_the_wrong_gradient_and_the_fixed_one_does_not():
    student = "".join(c.source for c in read_notebook(STUDENT).cells)
    fixed = "".join(c.source for c in read_notebook(FIXED).cells)
    assert "dZ2=dA2*sigmoid_derivative(Z2)" in student and "dZ2=dA2*sigmoid_derivative(Z2)" not in fixed
    assert "110% accuracy" in student  # the lab's text came along


# --- cell outputs as the student sees them -----------------------------------------------------


def test_cell_output_reads_an_execute_result_a_stdout_stream_and_no_output():
    nb = read_notebook(STUDENT)
    assert cell_output(nb, file=STUDENT, execution_count=38) == "0.02884181588548293"  # stderr warning ignored
    assert cell_output(nb, file=STUDENT, execution_count=39) == "0.995"
    assert cell_output(nb, file=STUDENT, execution_count=15) == "(800, 2) (800,)\n(200, 2) (200,)\n"
    plotted = "<matplotlib.collections.PathCollection at 0x7fabf133ee80>"
    assert cell_output(nb, file=STUDENT, execution_count=7) == plotted
    assert cell_output(nb, file=STUDENT, execution_count=35) is None  # the cell exists, it printed nothing
    assert cell_output(nb, file=STUDENT, execution_count=36) is None  # only a stderr warning
    assert cell_output(nb, file=STUDENT, cell_id="cell-12") == "1.0"  # In [37]


def test_cell_output_by_tag_and_multiline_text(tmp_path):
    answer = new_code_cell("W", execution_count=3, outputs=[
        new_output("stream", name="stdout", text="computing\n"),
        new_output("execute_result", data={"text/plain": "array([[1., 3.],\n       [2., 4.]])"}, execution_count=3)])
    answer.metadata["tags"] = ["answer-w"]
    printed = new_code_cell("print(1)\nprint(2)", execution_count=4, outputs=[
        new_output("stream", name="stdout", text="1\n"), new_output("stream", name="stderr", text="warn\n"),
        new_output("stream", name="stdout", text="2\n")])
    nb = read_notebook(_write(tmp_path, "lab.ipynb", [answer, printed]))
    assert cell_output(nb, file="lab.ipynb", tag="answer-w") == "array([[1., 3.],\n       [2., 4.]])"
    assert cell_output(nb, file="lab.ipynb", execution_count=4) == "1\n2\n"


def test_a_missing_cell_and_duplicate_matches_name_the_selector(tmp_path):
    cells = [new_code_cell("1", execution_count=5), new_code_cell("2", execution_count=5)]
    for cell in cells:
        cell.metadata["tags"] = ["answer"]
    nb = read_notebook(_write(tmp_path, "dup.ipynb", cells))
    with pytest.raises(BadInput, match=r"^dup\.ipynb: cell In \[5\]: expected exactly one code cell .*'2 cells'"):
        cell_output(nb, file="dup.ipynb", execution_count=5)
    with pytest.raises(BadInput, match=r"^dup\.ipynb: cell tag 'answer': .*2 cells"):
        cell_output(nb, file="dup.ipynb", tag="answer")
    with pytest.raises(BadInput, match=r"^dup\.ipynb: cell In \[12\]: expected a code cell .*no such cell"):
        cell_output(nb, file="dup.ipynb", execution_count=12)
    with pytest.raises(BadInput, match=r"cell id 'nope'.*no such cell"):
        cell_output(nb, file="dup.ipynb", cell_id="nope")
    with pytest.raises(BadInput, match="exactly one of an execution count, a cell id or a tag"):
        cell_output(nb, file="dup.ipynb")
    with pytest.raises(BadInput, match="received 'execution_count, tag'"):
        cell_output(nb, file="dup.ipynb", execution_count=5, tag="answer")


# --- hostile notebooks ----------------------------------------------------------------------------

HOSTILE = {
    "not-json.ipynb": (b"this is not json {", "a valid Jupyter notebook (.ipynb) in nbformat 4 (JSON)"),
    "wrong-nbformat.ipynb": (b'{"nbformat": 9, "nbformat_minor": 0, "cells": []}', "Unsupported nbformat version 9"),
    "a-list.ipynb": (b"[1, 2, 3]", "a valid Jupyter notebook"),
    "no-outputs.ipynb": (b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": '
                         b'[{"cell_type": "code", "id": "a", "source": "x", "metadata": {}}]}', "'outputs'"),
    "deep.ipynb": (b"[" * 100_000, "nested at most"),
    "binary.ipynb": (b"\x00\x01\x02", "binary data"),
    "utf16.ipynb": ("{}".encode("utf-16"), "UTF-16"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_notebook_is_one_line_naming_the_file(tmp_path, capsys, name):
    data, expected = HOSTILE[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(BadInput, match=re.escape(expected)):
        read_notebook(path)
    code = main(["audit", str(path), "--function", "backward", "--scenario", SCENARIO])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"nn-parity: error: {path}: ")
    assert expected in err


def test_a_folder_or_fifo_named_ipynb_is_refused_without_waiting(tmp_path, capsys):
    (tmp_path / "folder.ipynb").mkdir()
    os.mkfifo(tmp_path / "pipe.ipynb")
    start = time.monotonic()
    # a folder is a batch of the submissions in it: here none
    for name, says in (("folder.ipynb", "a folder holding .py or .ipynb files; received 'none in it'"),
                       ("pipe.ipynb", "expected a regular Jupyter notebook (.ipynb); received 'a FIFO (named pipe)'")):
        assert main(["audit", str(tmp_path / name), "--function", "f", "--scenario", SCENARIO]) == 2
        err = capsys.readouterr().err
        assert name in err and says in err and len(err.strip().splitlines()) == 1
    assert time.monotonic() - start < 30


def test_a_notebook_in_nbformat_3_is_upgraded_and_read(tmp_path):
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": [
        {"cell_type": "code", "input": "def backward(params, X, y):\n    return {}", "outputs": [],
         "language": "python", "metadata": {}, "prompt_number": 4}]}]}))
    nb = read_notebook(path)
    assert nb.nbformat == 4
    selection = select_code(nb)
    assert [c.label for c in selection.cells] == ["cell 1 (In [4])"]


# --- which code an audit runs ---------------------------------------------------------------------


def test_the_student_notebook_runs_its_definitions_and_skips_loading_plotting_and_training():
    selection = select_code(read_notebook(STUDENT))
    assert [(c.label, c.keep) for c in selection.cells] == [("cell 3 (In [33])", [0, 1, 2, 3]),
                                                           ("cell 9 (In [34])", list(range(5)))]
    assert selection.skipped == [
        "cell 4 (In [14]): skipped (reads files)",
        "cell 5 (In [15]): skipped (prints)",
        "cell 6 (In [16]): skipped (calls code, not a definition)",
        "cell 7 (In [7]): skipped (plots)",
        "cell 10 (In [35]): skipped (calls code, not a definition)",
        "cell 11 (In [36]): skipped (trains or loops)",
        "cell 12 (In [37]): skipped (shows a value)",
        "cell 13 (In [38]): skipped (shows a value)",
        "cell 14 (In [39]): skipped (shows a value)",
    ]


def test_tags_magics_syntax_errors_and_mixed_cells(tmp_path):
    tagged_run = new_code_cell("SCALE = compute_scale()\n", execution_count=5)
    tagged_run.metadata["tags"] = ["audit"]
    tagged_skip = new_code_cell("def backward(params, X, y):\n    return {}\n", execution_count=6)
    tagged_skip.metadata["tags"] = ["skip-audit"]
    cells = [
        new_code_cell("import numpy as np\n%matplotlib inline\n!pip install nothing\nRATE = 0.1", execution_count=1),
        new_code_cell("%%time\ndef slow():\n    pass", execution_count=2),
        new_code_cell("def broken(:\n    pass", execution_count=3),
        new_code_cell("def f(x):\n    return 2 * x\n\nmodel.fit(X, y, epochs=100)\nG = 9.81", execution_count=4),
        tagged_run, tagged_skip,
        new_code_cell("for i in range(3):\n    %time f(i)", execution_count=7),
    ]
    selection = select_code(read_notebook(_write(tmp_path, "mixed.ipynb", cells)))
    assert [(c.label, c.keep) for c in selection.cells] == [
        ("cell 1 (In [1])", [0, 1, 2, 3]), ("cell 4 (In [4])", [0, 2]), ("cell 5 (In [5])", None)]
    assert selection.cells[0].source.splitlines()[1:3] == ["pass", "pass"]  # the magic lines, kept as `pass`
    assert selection.skipped == [
        "cell 1 (In [1]): left out lines 2-3 (IPython magic or shell command)",
        "cell 2 (In [2]): skipped (cell magic %%time)",
        "cell 3 (In [3]): skipped (not valid Python: invalid syntax, line 1)",
        "cell 4 (In [4]): left out line 4 (trains or loops)",
        "cell 6 (In [6]): skipped (tagged skip-audit)",
        "cell 7 (In [7]): left out line 2 (IPython magic or shell command)",
        "cell 7 (In [7]): skipped (trains or loops)",
        "will not Run All: cell 3 (In [3]): not valid Python: Run All stops there",
    ]


@pytest.mark.parametrize("source, defines", [
    ("import numpy as np", True), ("from x import y as z", True), ("def f():\n    fit()", True),
    ("class A:\n    pass", True), ("X = 1", True), ("X: float = -1.5e-3", True), ("shape = (2, 10)", True),
    ("C = np.pi * 2", True), ("f = lambda z: z * 2", True), ("D = {'a': [1, 2]}", True), ('"""docs"""', True),
    ("try:\n    import torch\nexcept ImportError:\n    torch = None", True), ("if True:\n    import os", True),
    ("X = np.zeros(3)", False), ("model.fit(X)", False), ("print(1)", False), ("x", False),
    ("for i in range(3):\n    pass", False), ("while True:\n    pass", False),
    ("with open('f') as f:\n    pass", False),
    ("if train():\n    import os", False), ("X += 1", False), ("del X", False),
])
def test_what_counts_as_a_definition(source, defines):
    assert defines_only(ast.parse(source).body[0]) is defines


# --- the notebook's code in its own process (no frameworks) ----------------------------------------


def test_the_student_class_runs_through_the_adapter_and_computes_the_sheets_gradient(scenario, batch):
    for notebook, expected in ((STUDENT, BACKPROP.sheet_backward), (FIXED, BACKPROP.cross_entropy_backward)):
        returned = submit(load_submission(notebook), "backward", scenario, batch, timeout=30,
                          submission_adapter=load_submission_adapter(ADAPTER))
        assert returned.error == ""
        assert returned.notes == ["cell 3 (In [33]), line 4: the import raised ModuleNotFoundError: No module "
                                  "named 'sklearn'; the notebook ran on without it"]
        want = expected(*batch)
        for name, label in labels_of(scenario).items():
            np.testing.assert_allclose(np.reshape(returned.arrays[name], want[label].shape), want[label],
                                       rtol=1e-12, atol=1e-15)


def test_a_training_loop_that_would_never_end_is_not_run(tmp_path, scenario, batch):
    path = _write(tmp_path, "loop.ipynb", [
        new_code_cell("import numpy as np"),
        new_code_cell("def backward(params, X, y):\n    return {k: np.zeros_like(v) for k, v in params.items()}"),
        new_code_cell("while True:\n    pass"),
        new_code_cell("import time\ntime.sleep(3600)"),
    ])
    start = time.monotonic()
    returned = submit(load_submission(path), "backward", scenario, batch, timeout=20)
    assert returned.error == "" and set(returned.arrays) == set(PARAMS)
    assert time.monotonic() - start < 20


def test_a_function_that_needs_a_failed_import_crashes_never_passes(tmp_path, scenario, batch):
    path = _write(tmp_path, "needs.ipynb", [
        new_code_cell("from not_installed_anywhere import magic_gradients"),
        new_code_cell("def backward(params, X, y):\n    return magic_gradients(params, X, y)"),
    ])
    returned = submit(load_submission(path), "backward", scenario, batch, timeout=20)
    assert "the function raised NameError: name 'magic_gradients' is not defined" in returned.error
    assert not returned.arrays
    assert "No module named 'not_installed_anywhere'" in returned.notes[0]


def test_a_cell_that_raises_is_named_in_the_crash(tmp_path, scenario, batch):
    path = _write(tmp_path, "raises.ipynb", [new_code_cell("RATE = 1 / 0", execution_count=8),
                                             new_code_cell("def backward(params, X, y):\n    return {}")])
    returned = submit(load_submission(path), "backward", scenario, batch, timeout=20)
    assert returned.error == "running raises.ipynb cell 1 (In [8]) raised ZeroDivisionError: division by zero"


def test_a_notebook_without_the_function_names_what_it_did_not_run(tmp_path, scenario, batch, capsys):
    path = _write(tmp_path, "nofunc.ipynb", [new_code_cell("def backprop(params, X, y):\n    return {}"),
                                             new_code_cell("def backward(:\n", execution_count=2)])
    with pytest.raises(NoSuchFunction):
        submit(load_submission(path), "backward", scenario, batch, timeout=20)
    assert main(["audit", str(path), "--function", "backward", "--scenario", SCENARIO]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err == (f"nn-parity: error: {path}: --function: expected the name of a function defined by the code "
                   "cells of nofunc.ipynb (not run: cell 2 (In [2])); received 'backward'")


def test_an_adapter_that_is_not_python_is_bad_input(tmp_path, capsys):
    adapter = tmp_path / "adapter.py"
    adapter.write_text("def backward(params, X, y)\n    return {}\n")
    assert main(["audit", str(STUDENT), "--adapter", str(adapter), "--function", "backward",
                 "--scenario", SCENARIO]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "adapter.py: --adapter line 1: expected valid Python" in err


# --- the whole audit ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_audit_of_the_student_notebook_finds_004s_mistake(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    out, results = tmp_path / "audit.json", tmp_path / "results.json"
    code = main(["audit", str(STUDENT.relative_to(ROOT)), "--adapter", str(ADAPTER), "--function", "backward",
                 "--scenario", SCENARIO, "--json", str(out), "--gradescope", str(results)])
    text = capsys.readouterr().out
    assert code == 1
    data = json.loads(out.read_text())
    assert data["verdict"] == "wrong" and not data["ok"] and data["file"] == "tests/notebooks/student_004.ipynb"
    assert [p["status"] for p in data["parameters"]] == ["wrong"] * 4
    assert "0.5 x the gradient of mse (not of the scenario's binary_crossentropy)" in data["diagnosis"]
    assert "cell 11 (In [36]): skipped (trains or loops)" in data["skipped"]
    assert "the submitted gradients equal 0.5 x the gradient of mse" in text
    assert "not run from tests/notebooks/student_004.ipynb" in text and "cell 7 (In [7]): skipped (plots)" in text
    gradescope = json.loads(results.read_text())
    assert gradescope["score"] == 0.0 and [t["status"] for t in gradescope["tests"]] == ["failed"] * 4
    assert "0.5 x the gradient of mse" in gradescope["output"]


@pytest.mark.slow
def test_the_fixed_notebook_passes_and_the_function_notebook_fails(capsys):
    assert main(["audit", str(FIXED), "--adapter", str(ADAPTER), "--function", "backward",
                 "--scenario", SCENARIO]) == 0
    assert main(["audit", str(FUNCTION_NB), "--function", "backward", "--scenario", SCENARIO]) == 1
    out = capsys.readouterr().out
    assert "0.5 x the gradient of mse" in out
    assert "cell 1 (In [1]): left out line 2 (IPython magic or shell command)" in out
    assert "cell 4 (In [4]): skipped (tagged skip-audit)" in out
