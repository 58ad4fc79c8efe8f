"""Gradient audit: a deliberately wrong backward pass (004's) is caught per parameter and
diagnosed; a correct one passes; broken functions are reported per parameter.

A submitted file runs in its own process (harness.answers.sandbox): whatever way it ends
without returning gradients (sys.exit, os._exit, a signal, a hang, 10 GB, an exception) the
verdict is ``crashed`` with the reason, never a pass; it cannot touch the caller's directory.
The tests marked slow compute the Keras and torch gradients; the sandbox tests run without them.
"""
from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from harness.answers.audit import audit_gradients, initial_batch
from harness.answers.labels import labels_of
from harness.answers.returned import Returned
from harness.answers.sandbox import NoSuchFunction
from harness.commands.cli import main
from harness.spec.catalogue import resolve
from harness.testing import assert_gradients_match
from tests.submissions import run_submission

AUDITS = Path(__file__).resolve().parent.parent / "scenarios" / "keys" / "audits"
SCENARIO = str(AUDITS / "xor-relu-sigmoid.toml")
FILE = AUDITS / "backprop_004.py"
PARAMS = ["layers.0.kernel", "layers.0.bias", "layers.1.kernel", "layers.1.bias"]


def _module(path: Path) -> ModuleType:
    """The test's own, trusted copy of the shipped backward passes, imported in process."""
    spec = importlib.util.spec_from_file_location("backprop_004", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BACKPROP = _module(FILE)


@pytest.fixture(scope="module")
def scenario():
    return resolve(SCENARIO)


@pytest.fixture(scope="module")
def sheet_audit(scenario):
    return audit_gradients(BACKPROP.sheet_backward, scenario, function_name="sheet_backward")


@pytest.mark.slow
@pytest.mark.parametrize("param", PARAMS)
def test_the_sheets_backward_pass_is_wrong_for_every_parameter(sheet_audit, param):
    audit = next(p for p in sheet_audit.params if p.name == param)
    assert audit.status == "wrong"
    # wrong against every independent source, not only the reference
    assert min(audit.diffs.values()) > 1e-3


@pytest.mark.slow
def test_the_wrong_gradient_is_named_as_half_the_mse_gradient(sheet_audit):
    assert "0.5 x the gradient of mse" in sheet_audit.diagnosis
    assert "binary_crossentropy" in sheet_audit.diagnosis


@pytest.mark.slow
def test_the_independent_gradients_agree(sheet_audit):
    assert sheet_audit.source_spread["torch"] < 1e-14
    assert sheet_audit.source_spread["keras"] < 1e-14
    assert sheet_audit.source_spread["finite differences"] < 1e-8


@pytest.mark.slow
def test_the_cross_entropy_backward_pass_passes(scenario):
    result = assert_gradients_match(BACKPROP.cross_entropy_backward, scenario)
    assert result.ok and not result.diagnosis


@pytest.mark.slow
def test_assert_gradients_match_fails_with_the_audit_table():
    with pytest.raises(AssertionError, match="0.5 x the gradient of mse"):
        assert_gradients_match(BACKPROP.sheet_backward, SCENARIO)


def _reference_backward(params, X, y):
    return BACKPROP.cross_entropy_backward(params, X, y)


def _raises(params, X, y):
    raise ValueError("shapes (8,2) and (3,10) not aligned")


def _wrong_shape(params, X, y):
    grads = _reference_backward(params, X, y)
    return grads | {"w1": grads["w1"].T}


def _missing_bias(params, X, y):
    grads = _reference_backward(params, X, y)
    return {k: v for k, v in grads.items() if k != "b2"}


def _scalar_bias(params, X, y):
    grads = _reference_backward(params, X, y)
    return grads | {"b2": float(grads["b2"][0])}  # a (1,) bias returned as a number: same size, accepted


def _not_numeric(params, X, y):
    return _reference_backward(params, X, y) | {"b1": "zeros"}


def _doubled(params, X, y):
    return {k: 2 * v for k, v in _reference_backward(params, X, y).items()}


BROKEN = {
    "raises": (_raises, {"layers.0.kernel": "crashed", "layers.1.bias": "crashed"}),
    "transposed-kernel": (_wrong_shape, {"layers.0.kernel": "wrong shape", "layers.0.bias": "ok"}),
    "missing-bias": (_missing_bias, {"layers.1.bias": "missing", "layers.1.kernel": "ok"}),
    "scalar-bias": (_scalar_bias, {"layers.1.bias": "ok"}),
    "not-numeric": (_not_numeric, {"layers.0.bias": "wrong shape", "layers.0.kernel": "ok"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BROKEN), ids=list(BROKEN))
def test_broken_functions_are_reported_per_parameter(scenario, name):
    fn, statuses = BROKEN[name]
    result = audit_gradients(fn, scenario, function_name=name)
    by_name = {p.name: p for p in result.params}
    for param, status in statuses.items():
        assert by_name[param].status == status, by_name[param].message


@pytest.mark.slow
def test_a_scale_error_is_named(scenario):
    result = audit_gradients(_doubled, scenario)
    assert "2 x the correct gradient (binary_crossentropy): a scale error" in result.diagnosis


@pytest.mark.slow
def test_audit_cli_exit_codes_and_json(tmp_path, capsys):
    out = tmp_path / "audit.json"
    assert main(["audit", str(FILE), "--function", "sheet_backward", "--scenario", SCENARIO, "--json", str(out)]) == 1
    data = json.loads(out.read_text())
    assert not data["ok"] and {p["status"] for p in data["parameters"]} == {"wrong"}
    assert "0.5 x the gradient of mse" in data["diagnosis"] and data["crash"] == ""
    assert main(["audit", str(FILE), "--function", "cross_entropy_backward", "--scenario", SCENARIO]) == 0
    capsys.readouterr()
    assert main(["audit", str(FILE), "--function", "no_such_function", "--scenario", SCENARIO]) == 2
    err = capsys.readouterr().err
    assert "--function" in err and "backprop_004.py" in err and len(err.strip().splitlines()) == 1
    assert main(["audit", str(tmp_path / "missing.py"), "--function", "f", "--scenario", SCENARIO]) == 2
    assert "missing.py" in capsys.readouterr().err


def test_a_forward_only_scenario_is_bad_input(tmp_path, capsys):
    assert main(["audit", str(FILE), "--function", "sheet_backward", "--scenario", "calculate-z-example"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "calculate-z.toml: training:" in err and "forward-only" in err


@pytest.mark.slow
def test_finite_differences_catch_a_hand_gradient_without_autograd(scenario):
    """The audit's finite differences agree with the correct gradient and not with the sheet's."""
    result = audit_gradients(BACKPROP.sheet_backward, scenario)
    fd = {p.name: p.diffs["finite differences"] for p in result.params}
    assert all(d > 1e-3 for d in fd.values())
    good = audit_gradients(BACKPROP.cross_entropy_backward, scenario)
    assert all(p.diffs["finite differences"] < 1e-8 for p in good.params)
    assert np.isfinite([p.max_rel for p in good.params]).all()


# --- submitted files run in their own process ---------------------------------------------

# seconds: the hanging submission is stopped at its timeout, which must not hold the suite up; every
# other fault ends on its own and gets a generous limit, so that a loaded machine (a 256 MiB write,
# a 10 GB allocation, a process start) never turns its crash reason into "timed out"
TIMEOUT = 2.0
GENEROUS = 300.0

# name -> (the submitted file, what the crash reason says)
FAULTS = {
    "sys-exit-in-backward": ("import sys\n\ndef backward(params, X, y):\n    sys.exit(0)\n",
                             "the function called sys.exit(0)"),
    "os-exit-at-import": ("import os\nos._exit(0)\n\ndef backward(params, X, y):\n    return {}\n",
                          "the process exited with code 0 without returning a result"),
    "infinite-loop": ("def backward(params, X, y):\n    while True:\n        pass\n",
                      f"timed out after {TIMEOUT:g} s"),
    "10-GB": ("def backward(params, X, y):\n    return {'w1': bytearray(10**10)}\n",
              "the function raised MemoryError (the memory cap is 4 GiB)"),
    "fills-the-disk": ("def backward(params, X, y):\n    with open('big', 'wb') as f:\n"
                       "        while True:\n            f.write(bytes(2**20))\n",
                       "the function raised OSError: [Errno 27] File too large"),  # RLIMIT_FSIZE
    "killed": ("import os, signal\n\ndef backward(params, X, y):\n    os.kill(os.getpid(), signal.SIGKILL)\n",
               "the process was killed by SIGKILL"),
    "exit-code-and-stderr": ("import os, sys\nsys.stderr.write('loading weights.npy\\nno weights\\n')\n"
                             "sys.stderr.flush()\nos._exit(3)\n",
                             "exited with code 3 without returning a result; last line of its stderr: no weights"),
    "raises-at-import": ("raise RuntimeError('first line\\nweights.npy not found')\n",
                         "importing fault.py raised RuntimeError: weights.npy not found"),
    "syntax-error": ("def backward(:\n", "importing fault.py raised SyntaxError"),
    "returns-none": ("def backward(params, X, y):\n    print('done')\n",
                     "the function returned a NoneType, not a dict or tuple of gradients"),
    "too-few-values": ("def backward(params, X, y):\n    return (1.0, 2.0)\n",
                       "the function returned 2 values for 4 parameters"),
}


@pytest.fixture(scope="module")
def batch(scenario):
    return initial_batch(scenario)


def _submit(tmp_path: Path, source: str, name: str = "fault.py") -> Path:
    folder = tmp_path / "submission"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(source)
    return path


def _timeout(fault: str) -> float:
    return TIMEOUT if fault == "infinite-loop" else GENEROUS


def _run(path: Path, scenario, batch, function: str = "backward", timeout: float = GENEROUS) -> Returned:
    params, X, y = batch
    return run_submission(path, function, params, X, y, labels=labels_of(scenario), timeout=timeout)


# the hanging submission waits out its TIMEOUT: slow
@pytest.mark.parametrize("fault", [pytest.param(fault, marks=pytest.mark.slow) if fault == "infinite-loop" else fault
                                   for fault in FAULTS], ids=list(FAULTS))
def test_a_submission_that_does_not_return_gradients_crashed(tmp_path, scenario, batch, fault):
    source, reason = FAULTS[fault]
    start = time.monotonic()
    returned = _run(_submit(tmp_path, source), scenario, batch, timeout=_timeout(fault))
    assert reason in returned.error and "\n" not in returned.error
    assert not returned.arrays
    if fault == "infinite-loop":  # stopped at its timeout, not when the loop ends (never)
        assert time.monotonic() - start < TIMEOUT + 60


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
def test_the_cli_says_crashed_for_every_parameter_and_exits_1(tmp_path, capsys, fault):
    source, reason = FAULTS[fault]
    out = tmp_path / "audit.json"
    code = main(["audit", str(_submit(tmp_path, source)), "--function", "backward", "--scenario", SCENARIO,
                 "--timeout", f"{_timeout(fault):g}", "--json", str(out)])
    assert code == 1
    data = json.loads(out.read_text())
    assert not data["ok"] and reason in data["crash"]
    assert [(p["name"], p["status"]) for p in data["parameters"]] == [(name, "crashed") for name in PARAMS]
    assert all(reason in p["message"] for p in data["parameters"])
    assert f"crashed: {data['crash']}" in capsys.readouterr().out


@pytest.mark.slow
def test_control_characters_in_a_crash_reason_are_escaped(tmp_path, capsys):
    path = _submit(tmp_path, "def backward(params, X, y):\n    raise ValueError('\\x1b[1A\\x1b[2Kall ok')\n")
    assert main(["audit", str(path), "--function", "backward", "--scenario", SCENARIO]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "crashed: the function raised ValueError: \\x1b[1A\\x1b[2Kall ok" in out


def test_a_missing_function_is_told_apart_from_a_crash(tmp_path, scenario, batch):
    path = _submit(tmp_path, "def backward(params, X, y):\n    return {}\n")
    with pytest.raises(NoSuchFunction):
        _run(path, scenario, batch, function="backprop")
    with pytest.raises(NoSuchFunction):  # a name that is not callable is no function either
        _run(_submit(tmp_path, "backward = 3\n", "constant.py"), scenario, batch)


def test_the_callers_working_directory_is_untouched(tmp_path, monkeypatch, scenario, batch):
    caller = tmp_path / "caller"
    caller.mkdir()
    (caller / "sentinel.txt").write_text("keep me")
    monkeypatch.chdir(caller)
    seen = tmp_path / "seen-cwd.txt"
    path = _submit(tmp_path, f"""import os, pathlib, shutil
pathlib.Path({str(seen)!r}).write_text(os.getcwd())
for name in os.listdir("."):
    shutil.rmtree(name) if os.path.isdir(name) else os.remove(name)
pathlib.Path("junk.txt").write_text("written at import")

def backward(params, X, y):
    pathlib.Path("more-junk.txt").write_text("written in the call")
    return {{}}
""")
    returned = _run(path, scenario, batch)
    assert returned.error == "" and not returned.arrays  # it returned: nothing crashed, every gradient missing
    assert sorted(p.name for p in caller.iterdir()) == ["sentinel.txt"]
    assert (caller / "sentinel.txt").read_text() == "keep me"
    assert sorted(p.name for p in path.parent.iterdir()) == ["fault.py"]  # no junk, no __pycache__
    its_cwd = Path(seen.read_text())
    assert its_cwd != caller and not its_cwd.exists()  # a fresh directory, deleted afterwards


def test_a_sibling_import_works(tmp_path, scenario, batch):
    _submit(tmp_path, FILE.read_text(), "helper.py")
    path = _submit(tmp_path, "from helper import cross_entropy_backward as backward\n", "student.py")
    returned = _run(path, scenario, batch)
    assert returned.error == "" and not returned.unreadable
    expected = BACKPROP.cross_entropy_backward(*batch)
    labels = labels_of(scenario)
    assert set(returned.arrays) == set(labels)
    for name, label in labels.items():
        assert returned.arrays[name].dtype == np.float64
        np.testing.assert_array_equal(returned.arrays[name], expected[label])


@pytest.mark.slow  # waits out its 10 s timeout
def test_what_the_submission_started_is_killed_with_it(tmp_path, scenario, batch, gone):
    pid_file = tmp_path / "grandchild.pid"
    path = _submit(tmp_path, f"""import pathlib, subprocess, time
child = subprocess.Popen(["sleep", "600"])
pathlib.Path({str(pid_file)!r}).write_text(str(child.pid))

def backward(params, X, y):
    time.sleep(3600)
""")
    # 10 s: time for the file's import to start its child on a loaded machine; the call then hangs
    assert "timed out" in _run(path, scenario, batch, timeout=10.0).error
    assert gone(int(pid_file.read_text()), 10)



@pytest.mark.slow
def test_a_sibling_import_passes_through_the_cli(tmp_path):
    _submit(tmp_path, FILE.read_text(), "helper.py")
    path = _submit(tmp_path, "from helper import cross_entropy_backward as grad\n\n"
                             "def backward(params, X, y):\n    return grad(params, X, y)\n", "student.py")
    assert main(["audit", str(path), "--function", "backward", "--scenario", SCENARIO]) == 0
    sheet = _submit(tmp_path, "from helper import sheet_backward\n", "sheet.py")
    assert main(["audit", str(sheet), "--function", "sheet_backward", "--scenario", SCENARIO]) == 1


@pytest.mark.parametrize("name, data, says", [
    ("answer.txt", b"def backward(params, X, y):\n    return {}\n",
     "expected a Python file (.py) or a Jupyter notebook (.ipynb); received 'answer.txt'"),
    ("latin1.py", "# caf\xe9\n".encode("latin-1"), "expected UTF-8 text; received 'the byte 0xe9 at line 1"),
])
def test_a_submission_that_is_neither_python_nor_a_notebook_is_bad_input(tmp_path, capsys, name, data, says):
    path = tmp_path / name
    path.write_bytes(data)
    assert main(["audit", str(path), "--function", "backward", "--scenario", SCENARIO]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"nn-parity: error: {path}: ") and says in err
