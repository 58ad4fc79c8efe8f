"""The frameworks' worker processes never outlive the command, and an interrupt is an interrupt
(issue 25, items 2 and 5). Real CLI processes, real workers, real signals:

* SIGTERM to the CLI alone (a CI job's limit): the workers are shut down, one line, exit 143;
  SIGKILL to the CLI alone: every worker ends too (its parent-death signal);
* Ctrl-C while a worker imports its framework: exit 130, "interrupted", no run reported crashed,
  nothing written;
* a framework import that hangs, without ``--timeout``: the run is ``crashed`` after
  ``$NN_PARITY_START_TIMEOUT`` seconds ("did not start within N s"), never a pass or a verdict.

The slow or hanging import is planted by a ``sitecustomize.py`` on ``PYTHONPATH`` (the workers
inherit it); the tests wait for events (a worker in ``/proc``, its framework loaded, the planted
import's marker file) with generous limits, never for a fixed time.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.children import INTERRUPTIBLE, cpu_seconds, descendants, loaded, slow_import, survivors, wait_for

pytestmark = pytest.mark.slow  # real workers importing real frameworks

ROOT = Path(__file__).resolve().parent.parent
TINY = (ROOT / "tests" / "scenarios" / "tiny-mlp.toml").read_text()


def _workers(pid: int) -> list[int]:
    """The CLI's worker processes (not multiprocessing's resource tracker)."""
    found = []
    for child in descendants(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue
    return found


def _cli(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=env or {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, **kwargs)


@pytest.fixture
def long_run(tmp_path: Path) -> Path:
    """A scenario whose torch run lasts minutes (it is interrupted long before its end)."""
    path = tmp_path / "long.toml"
    # in order, not shuffled: drawing 10^6 shuffled epochs took the CLI 12 s of CPU before any worker started
    path.write_text(TINY.replace('name = "tiny-mlp"', 'name = "long"').replace("epochs = 4", "epochs = 1000000")
                  .replace("shuffle = true", "shuffle = false"))
    return path


# CPU seconds of the torch worker after which it is computing the run (importing torch takes it
# 1-2 s): only a worker that computes, not reading its pipe, needs its parent-death signal to end
# with a killed CLI (one still importing reads an end of file next and leaves)
COMPUTING = 6.0


@pytest.mark.parametrize("command, sig", [("run", signal.SIGTERM), ("run", signal.SIGKILL), ("report", signal.SIGTERM)],
                         ids=["run-SIGTERM", "run-SIGKILL", "report-SIGTERM"])
def test_a_signal_to_the_cli_alone_leaves_no_worker_running(long_run: Path, tmp_path: Path, command: str,
                                                            sig: int) -> None:
    out = tmp_path / "run.json"
    where = ["--json", str(out)] if command == "run" else ["--out", str(out)]
    process = _cli(command, *(["--scenario"] if command == "report" else []), str(long_run), "--frameworks",
                   "numpy,torch", "--no-cache", *where, start_new_session=True)
    try:
        wait_for(lambda: any(loaded(pid, "libtorch") for pid in _workers(process.pid)) or process.poll() is not None,
                 limit=300, what="the torch worker loaded torch")
        if sig == signal.SIGKILL:
            wait_for(lambda: any(cpu_seconds(pid) > COMPUTING for pid in _workers(process.pid))
                     or process.poll() is not None, limit=300, what="the torch worker computing the run")
        assert process.poll() is None, process.communicate()
        started = descendants(process.pid)  # the worker and multiprocessing's resource tracker
        process.send_signal(sig)  # the CLI alone, not its process group
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    if sig == signal.SIGTERM:
        assert process.returncode == 143, err
        assert err.strip().splitlines()[-1] == "nn-parity: terminated" and "Traceback" not in err, err
        assert "crashed" not in err, err  # the workers it ended are no runs
    else:
        assert process.returncode == -signal.SIGKILL
    assert not out.exists()  # nothing half-written
    assert not survivors(started), "worker processes outlived the command"


def test_ctrl_c_while_a_worker_imports_its_framework_is_an_interrupt(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches the whole process group, the workers starting up included."""
    marker = tmp_path / "importing"
    env = slow_import(tmp_path / "site", module="torch", seconds=600, marker=marker)
    out = tmp_path / "run.json"
    process = _cli("run", str(ROOT / "tests" / "scenarios" / "tiny-mlp.toml"), "--frameworks", "numpy,keras,torch",
                   "--no-cache", "--json", str(out), env=env, start_new_session=True, **INTERRUPTIBLE)
    try:
        wait_for(lambda: list(tmp_path.glob("importing.*")) or process.poll() is not None, limit=300,
                 what="a worker importing torch")
        assert process.poll() is None, process.communicate()
        started = descendants(process.pid)
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "nn-parity: interrupted", err
    for wrong in ("crashed", "Traceback", "TypeError", "KeyboardInterrupt"):
        assert wrong not in err, err
    assert not out.exists()
    assert not survivors(started), "worker processes outlived the command"


def test_a_framework_import_that_hangs_is_a_crashed_run_after_the_start_limit(tmp_path: Path) -> None:
    """No ``--timeout``: the start-up bound alone ends the wait; the run is crashed, the command exits 1,
    and no pair with torch is compared (no verdict, no pass)."""
    marker = tmp_path / "importing"
    env = {**slow_import(tmp_path / "site", module="torch", seconds=600, marker=marker),
           "NN_PARITY_START_TIMEOUT": "5"}
    out = tmp_path / "run.json"
    process = _cli("run", str(ROOT / "tests" / "scenarios" / "tiny-mlp.toml"), "--frameworks", "numpy,torch",
                   "--dtype", "float64", "--no-cache", "--json", str(out), env=env, start_new_session=True)
    try:
        stdout, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 1, err
    runs = {r["framework"]: r for r in json.loads(out.read_text())["runs"]}
    assert runs["numpy"]["status"] == "ok"
    assert runs["torch"]["status"] == "crashed"
    assert "the torch worker did not start within 5 s" in runs["torch"]["message"]
    assert "NN_PARITY_START_TIMEOUT" in runs["torch"]["message"]
    assert json.loads(out.read_text())["comparisons"] == []
    assert "did not start within 5 s" in err
    hung = [int(p.name.split(".")[-1]) for p in tmp_path.glob("importing.*")]
    assert hung and not survivors(hung), "the hanging worker was not killed"


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan", "1e9"])
def test_a_bad_start_limit_is_one_line_and_exit_2(value: str) -> None:
    env = {**os.environ, "NN_PARITY_START_TIMEOUT": value}
    done = subprocess.run([sys.executable, "-m", "harness", "run", "sgd-worked-example", "--frameworks", "numpy"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == ("nn-parity: error: environment: NN_PARITY_START_TIMEOUT: expected a number of "
                                   f"seconds above 0, at most a week (604800); received {value!r}")
