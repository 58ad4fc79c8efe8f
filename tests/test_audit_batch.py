"""A whole class audited at once: real submissions (.py and .ipynb) in a folder, each in its own
process, several at a time; a right, a wrong, a crashing, a hanging, a broken and a function-less
submission each give one row, and the table, JSON, CSV and Gradescope files say the same.

Every test here runs the real CLI: submissions in their own processes, the frameworks' gradients.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from harness.commands.cli import main
from tests.children import INTERRUPTIBLE

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = str(ROOT / "scenarios" / "keys" / "audits" / "xor-relu-sigmoid.toml")
BACKPROP = (ROOT / "scenarios" / "keys" / "audits" / "backprop_004.py").read_text()
WRONG_NOTEBOOK = ROOT / "tests" / "notebooks" / "backward_004.ipynb"
# seconds: every submission's budget (interpreter start, import and call), the hanging one's end;
# ten times what the others need on an idle machine, so that a loaded one still runs them to the end
TIMEOUT = "10"
MISTAKE = "0.5 x the gradient of mse (not of the scenario's binary_crossentropy): the backward pass differentiates mse"

# file -> (verdict, score, what the diagnosis says); rows come sorted by file
EXPECTED = {
    "broken.ipynb": ("crashed", 0, "broken.ipynb: expected a valid Jupyter notebook (.ipynb) in nbformat 4 (JSON)"),
    "crashing.py": ("crashed", 0, "the function raised ValueError: shapes (8,2) and (3,10) not aligned"),
    "hanging.py": ("crashed", 0, f"timed out after {TIMEOUT} s"),
    "nofunction.ipynb": ("crashed", 0, "nofunction.ipynb: --function: expected the name of a function defined by "
                                       "the code cells of nofunction.ipynb; received 'backward'"),
    "right.py": ("correct", 4, ""),
    "wrong.ipynb": ("wrong", 0, MISTAKE),
}


def _class(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "right.py").write_text(BACKPROP + "\n\nbackward = cross_entropy_backward\n")
    (folder / "wrong.ipynb").write_bytes(WRONG_NOTEBOOK.read_bytes())
    (folder / "crashing.py").write_text("def backward(params, X, y):\n"
                                        "    raise ValueError('shapes (8,2) and (3,10) not aligned')\n")
    (folder / "hanging.py").write_text("import time\n\ndef backward(params, X, y):\n    time.sleep(3600)\n")  # no CPU
    (folder / "broken.ipynb").write_text('{"cells": [')
    (folder / "nofunction.ipynb").write_text(nbformat.writes(new_notebook(cells=[
        new_code_cell("def backprop(params, X, y):\n    return {}")])))
    (folder / "notes.txt").write_text("not a submission: a folder gives only its .py and .ipynb files")
    return folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The class's folder and, beside it, where the outputs go; the audit runs from the workspace."""
    root = tmp_path_factory.mktemp("batch")
    _class(root / "subs")
    (root / "out").mkdir()
    return root


def _audit(*arguments: str) -> int:
    return main(["audit", *arguments, "--function", "backward", "--scenario", SCENARIO, "--timeout", TIMEOUT,
                 "--quiet"])


@pytest.fixture(scope="module")
def runs(workspace):
    """The class audited twice, with --jobs 2 and --jobs 1, from the workspace (relative paths)."""
    cwd = os.getcwd()
    os.chdir(workspace)
    try:
        outputs = {}
        for jobs in ("2", "1"):
            out = workspace / "out" / f"jobs{jobs}"
            out.mkdir()
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                code = _audit("subs", "--jobs", jobs, "--json", f"out/jobs{jobs}/audit.json",
                              "--csv", f"out/jobs{jobs}/grades.csv")
            outputs[jobs] = (code, stdout.getvalue(), out)
        return outputs
    finally:
        os.chdir(cwd)


def test_every_submission_is_a_row_and_the_batch_exits_1(runs):
    code, text, _ = runs["2"]
    assert code == 1
    rows = [line for line in text.splitlines() if line.startswith("| subs/")]
    assert [row.split("|")[1].strip() for row in rows] == [f"subs/{name}" for name in EXPECTED]
    for row, (name, (verdict, _, says)) in zip(rows, EXPECTED.items()):
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[1] == verdict, row
        statuses = cells[2:6]  # w1, b1, w2, b2
        assert statuses == (["ok"] * 4 if verdict == "correct" else ["WRONG"] * 4 if verdict == "wrong"
                            else ["CRASHED"] * 4), row
        assert says in cells[6]
        assert float(cells[7]) >= 0
    header = text.splitlines()[2]
    assert [c.strip() for c in header.split("|")[1:-1]] == ["submission", "verdict", "w1", "b1", "w2", "b2",
                                                            "mistake", "seconds"]
    assert "6 submissions, 1 correct, 1 wrong, 4 crashed" in text
    assert "subs/wrong.ipynb: cell 1 (In [1]): left out line 2 (IPython magic or shell command)" in text


def test_the_hanging_submission_was_stopped_at_its_timeout(runs):
    data = json.loads((runs["2"][2] / "audit.json").read_text())
    hanging = next(s for s in data["submissions"] if s["file"] == "subs/hanging.py")
    assert float(TIMEOUT) <= hanging["seconds"] < float(TIMEOUT) + 30


def test_the_json_has_one_entry_per_submission(runs):
    data = json.loads((runs["2"][2] / "audit.json").read_text())
    assert data["ok"] is False and data["scenario"] == "xor-relu-sigmoid" and data["function"] == "backward"
    assert [s["file"] for s in data["submissions"]] == [f"subs/{name}" for name in EXPECTED]
    for entry, (verdict, score, says) in zip(data["submissions"], EXPECTED.values()):
        assert {"file", "verdict", "diagnosis", "parameters", "seconds"} <= set(entry)
        assert entry["verdict"] == verdict and entry["score"] == score and entry["max_score"] == 4
        assert says in entry["diagnosis"]
        assert [p["name"] for p in entry["parameters"]] == ["layers.0.kernel", "layers.0.bias", "layers.1.kernel",
                                                            "layers.1.bias"]
    right = data["submissions"][4]
    assert all(p["status"] == "ok" and p["max_abs_diff"]["reference"] < 1e-12 for p in right["parameters"])
    wrong = data["submissions"][5]
    assert all(p["status"] == "wrong" and p["max_abs_diff"]["finite differences"] > 1e-3 for p in wrong["parameters"])
    assert "cell 4 (In [4]): skipped (tagged skip-audit)" in wrong["skipped"]


def test_the_csv_is_one_row_per_submission_for_a_gradebook(runs):
    rows = list(csv.reader(io.StringIO((runs["2"][2] / "grades.csv").read_text())))
    assert rows[0] == ["file", "verdict", "score", "max_score", "diagnosis"]
    assert [r[:4] for r in rows[1:]] == [[f"subs/{name}", verdict, str(score), "4"]
                                         for name, (verdict, score, _) in EXPECTED.items()]
    assert all(says in r[4] for r, (_, _, says) in zip(rows[1:], EXPECTED.values()))


def test_jobs_1_and_jobs_2_give_the_same_json_and_csv_but_for_seconds(runs, json_without_timings):
    assert runs["1"][0] == runs["2"][0] == 1
    assert json_without_timings(runs["1"][2] / "audit.json") == json_without_timings(runs["2"][2] / "audit.json")
    assert (runs["1"][2] / "grades.csv").read_text() == (runs["2"][2] / "grades.csv").read_text()


def test_no_absolute_path_and_nothing_written_but_the_outputs(runs, workspace):
    for jobs in ("1", "2"):
        for name in ("audit.json", "grades.csv"):
            assert str(workspace) not in (runs[jobs][2] / name).read_text()
    assert sorted(p.name for p in (workspace / "subs").iterdir()) == sorted([*EXPECTED, "notes.txt"])
    assert sorted(p.name for p in workspace.iterdir()) == ["out", "subs"]
    assert sorted(p.name for p in (workspace / "out" / "jobs2").iterdir()) == ["audit.json", "grades.csv"]


def test_from_elsewhere_paths_are_relative_to_the_submissions_folder(workspace, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "grades.csv"
    assert _audit(str(workspace / "subs" / "*.py"), "--csv", str(out)) == 1
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert [r[:2] for r in rows[1:]] == [["crashing.py", "crashed"], ["hanging.py", "crashed"],
                                         ["right.py", "correct"]]
    assert str(workspace) not in out.read_text() and str(workspace) not in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grades.csv"]


def test_gradescope_results_for_one_submission(workspace, tmp_path):
    subs = workspace / "subs"
    results = tmp_path / "results.json"
    assert main(["audit", str(subs / "wrong.ipynb"), "--function", "backward", "--scenario", SCENARIO,
                 "--gradescope", str(results)]) == 1
    data = json.loads(results.read_text())
    assert set(data) == {"score", "execution_time", "output", "visibility", "stdout_visibility", "tests"}
    assert data["score"] == 0.0 and isinstance(data["execution_time"], int)
    assert data["output"].startswith("Gradient audit of backward on xor-relu-sigmoid: wrong (0 of 4 gradients")
    assert MISTAKE in data["output"] and "cell 5 (In [5]): skipped (plots)" in data["output"]
    assert [t["name"] for t in data["tests"]] == ["gradient of w1 (layers.0.kernel)", "gradient of b1 (layers.0.bias)",
                                                  "gradient of w2 (layers.1.kernel)", "gradient of b2 (layers.1.bias)"]
    for number, test in enumerate(data["tests"], 1):
        assert test["number"] == str(number) and test["max_score"] == 1.0
        assert test["score"] == 0.0 and test["status"] == "failed" and test["output"].startswith("wrong: ")

    assert main(["audit", str(subs / "right.py"), "--function", "backward", "--scenario", SCENARIO,
                 "--gradescope", str(results)]) == 0
    data = json.loads(results.read_text())
    assert data["score"] == 4.0 and sum(t["max_score"] for t in data["tests"]) == 4.0
    assert all(t["status"] == "passed" and t["output"].startswith("correct: ") for t in data["tests"])

    assert main(["audit", str(subs / "hanging.py"), "--function", "backward", "--scenario", SCENARIO,
                 "--timeout", TIMEOUT, "--gradescope", str(results)]) == 1
    data = json.loads(results.read_text())
    assert data["score"] == 0.0 and all(t["output"] == f"crashed: timed out after {TIMEOUT} s" for t in data["tests"])


def test_gradescope_tells_the_student_why_a_broken_notebook_is_not_graded(workspace, tmp_path, capsys):
    results = tmp_path / "results.json"
    assert main(["audit", str(workspace / "subs" / "broken.ipynb"), "--function", "backward", "--scenario", SCENARIO,
                 "--gradescope", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken.ipynb: expected a valid Jupyter notebook" in err
    data = json.loads(results.read_text())
    assert data["score"] == 0.0 and [t["score"] for t in data["tests"]] == [0.0] * 4
    assert "broken.ipynb: expected a valid Jupyter notebook" in data["output"] and str(workspace) not in data["output"]


BAD = {
    "no such file": (["subs", "missing.py"], "missing.py: expected an existing file, a folder or a glob pattern"),
    "empty folder": (["empty"], "empty: expected a folder holding .py or .ipynb files; received 'none in it'"),
    "no match": (["subs/*.r"], "subs/*.r: expected a pattern matching .py or .ipynb files; received 'no match'"),
    "gradescope batch into a file": (["subs", "--gradescope", "subs/right.py"],
                                     "subs/right.py: --gradescope: expected a folder (or a path where one can be "
                                     "created); received 'an existing file'"),
    "jobs 0": (["subs", "--jobs", "0"], "--jobs: expected an integer >= 1"),
    "json is a folder": (["subs", "--json", "subs"],
                         "subs: --json: expected a file path; received 'an existing folder'"),
    "forward-only": (["subs", "--scenario", "calculate-z-example"], "forward-only"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_exit_2(workspace, tmp_path, monkeypatch, capsys, case):
    arguments, says = BAD[case]
    monkeypatch.chdir(workspace)
    (workspace / "empty").mkdir(exist_ok=True)
    start = time.monotonic()
    try:
        code = main(["audit", *arguments, "--function", "backward", "--scenario", SCENARIO, "--quiet"]
                    if "--scenario" not in arguments else ["audit", *arguments, "--function", "backward"])
    finally:  # the shared workspace is as the other tests expect it, whatever order they run in
        (workspace / "empty").rmdir()
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and says in err, err
    assert time.monotonic() - start < 60  # refused before any submission runs
    assert not (workspace / "results.json").exists()


def _cli(arguments: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", "audit", *arguments, "--function", "backward",
                             "--scenario", SCENARIO], **kwargs)


def test_a_progress_bar_with_an_eta_on_a_terminal_and_none_with_quiet(workspace, tmp_path):
    subs = workspace / "subs"
    seen = {}
    for quiet in (False, True):
        primary, secondary = pty.openpty()
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
        child = _cli([str(subs / "crashing.py"), str(subs / "broken.ipynb")] + (["--quiet"] if quiet else []),
                     stdout=subprocess.DEVNULL, stderr=secondary, cwd=tmp_path)
        os.close(secondary)
        chunks = []
        while True:
            try:
                data = os.read(primary, 4096)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        os.close(primary)
        assert child.wait(timeout=300) == 1
        seen[quiet] = b"".join(chunks).decode(errors="replace")
    assert "2/2" in seen[False] and "submission" in seen[False] and "<" in seen[False]  # tqdm: count, unit, ETA
    assert seen[True] == ""


def test_ctrl_c_stops_the_batch_and_every_submission(workspace, tmp_path, gone):
    pids = tmp_path / "pids"
    pids.mkdir()
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("a.py", "b.py"):
        (folder / name).write_text("import os, pathlib\n"
                                   f"pathlib.Path({str(pids / name)!r}).write_text(str(os.getpid()))\n"
                                   "def backward(params, X, y):\n    while True:\n        pass\n")
    child = _cli([str(folder), "--timeout", "600", "--jobs", "2", "--json", str(tmp_path / "audit.json")],
                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path, **INTERRUPTIBLE)
    deadline = time.monotonic() + 300  # both submissions started (a generous wait for an event)
    while time.monotonic() < deadline and len(list(pids.iterdir())) < 2:
        time.sleep(0.1)
    assert len(list(pids.iterdir())) == 2
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130 and err.decode().strip() == "nn-parity: interrupted"
    for pid_file in pids.iterdir():
        assert gone(int(pid_file.read_text()), 10)
    assert not (tmp_path / "audit.json").exists()

