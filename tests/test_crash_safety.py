"""A report is replaced as a set: a process killed at any rename of the write phase leaves the
complete old report or the complete new one, and the next run cleans up; Ctrl-C is one line,
exit 130, nothing half-written. Real `nn-parity report` processes, killed for real."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.commands.cli import main
from tests.children import INTERRUPTIBLE, descendants, loaded

pytestmark = pytest.mark.slow  # every case runs real reports (Keras and torch) in subprocesses

TINY = (Path(__file__).resolve().parent / "scenarios" / "tiny-mlp.toml").read_text()
ROOT = Path(__file__).resolve().parent.parent

# Runs the CLI with os.replace wrapped: the KILL_AT-th rename into the output folder kills the
# process (SIGKILL: no handler, no cleanup) just before it happens.
KILLER = """
import os, signal, sys
from harness.commands.cli import main

out, kill_at, real, seen = os.path.abspath(sys.argv[1]), int(sys.argv[2]), os.replace, [0]

def replace(src, dst):
    if os.path.abspath(os.path.dirname(dst)) == out:
        seen[0] += 1
        if seen[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)

os.replace = replace
sys.exit(main(["report", "--scenario", sys.argv[3], "--out", out, "--quiet"]))
"""


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env, **kwargs)


def report(scenario: Path, out: Path) -> None:
    done = cli("-m", "harness", "report", "--scenario", str(scenario), "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr


def report_here(scenario: Path, out: Path) -> None:
    """The same command in this process: its framework workers are this test process's, started once for
    every test it runs, not once per command (the bytes are the same: tests/test_report_environment.py)."""
    assert main(["report", "--scenario", str(scenario), "--out", str(out), "--quiet"]) == 0


def linked(folder: Path) -> set[str]:
    return set(re.findall(r"!\[[^]]*\]\(([^)]+)\)", (folder / "tiny-mlp.md").read_text()))


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> dict[str, Path]:
    """The old report (learning rate 0.1) and the new one (0.2) of the same scenario, made whole."""
    root = tmp_path_factory.mktemp("versions")
    (root / "old.toml").write_text(TINY)
    (root / "new.toml").write_text(TINY.replace("learning_rate = 0.1", "learning_rate = 0.2"))
    assert (root / "old.toml").read_text() != (root / "new.toml").read_text()
    report_here(root / "old.toml", root / "old")
    report_here(root / "new.toml", root / "new")
    assert (root / "old" / "tiny-mlp.md").read_bytes() != (root / "new" / "tiny-mlp.md").read_bytes()
    return {"old": root / "old", "new": root / "new", "new.toml": root / "new.toml"}


@pytest.mark.parametrize("kill_at", [1, 2, 3], ids=["first-plot", "second-plot", "markdown"])
def test_a_kill_during_the_write_leaves_the_old_or_the_new_report(versions, tmp_path, kill_at):
    out = tmp_path / "reports"
    shutil.copytree(versions["old"], out)
    killed = cli("-c", KILLER, str(out), str(kill_at), str(versions["new.toml"]))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    md = (out / "tiny-mlp.md").read_bytes()
    assert md in ((versions["old"] / "tiny-mlp.md").read_bytes(), (versions["new"] / "tiny-mlp.md").read_bytes())
    for name in linked(out):  # every plot the markdown shows is there, whole
        source = versions["old"] if md == (versions["old"] / "tiny-mlp.md").read_bytes() else versions["new"]
        assert (out / name).read_bytes() == (source / name).read_bytes(), name
    report(versions["new.toml"], out)  # the next run completes the new set and cleans up
    assert (out / "tiny-mlp.md").read_bytes() == (versions["new"] / "tiny-mlp.md").read_bytes()
    pngs = {p.name for p in out.glob("*.png")}
    assert pngs == linked(out) and not list(out.glob(".*.tmp"))


def test_ctrl_c_is_one_line_exit_130_and_leaves_nothing_half_written(versions, tmp_path):
    out = tmp_path / "reports"
    shutil.copytree(versions["old"], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([sys.executable, "-m", "harness", "report", "--scenario", str(versions["new.toml"]),
                                "--out", str(out)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
                               **INTERRUPTIBLE)
    first = process.stderr.readline()  # the first progress line: the numpy run is done, others follow
    assert first.startswith("tiny-mlp x "), first
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=120) == 130
    assert rest.splitlines()[-1] == "nn-parity: interrupted" and "Traceback" not in rest, rest
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before or after["tiny-mlp.md"] == (versions["new"] / "tiny-mlp.md").read_bytes()
    assert not list(out.glob(".*.tmp"))


def test_ctrl_c_stops_a_long_keras_run_within_seconds(tmp_path):
    """A Keras run of 3,000,000 steps (minutes) in its worker stops within seconds of Ctrl-C to the
    CLI instead of at its end: the CLI stops its workers, whatever they compute (the compiled loop's
    CHUNK_STEPS, Python taking the interrupt between calls, matters where the run is in the
    interrupted process itself: the Python API, ``inline()``; measured: this test passes with
    CHUNK_STEPS = 10**8). The interrupt is sent once TensorFlow is loaded in the run's process
    tree (an event, not a guess at how long the imports take on a loaded machine); the limit on the
    stop, 60 s, leaves room for a loaded machine and is still a fraction of the run."""
    path = tmp_path / "long.toml"
    # in order, not shuffled: drawing 10^6 shuffled epochs took the CLI 12 s of CPU before any worker started
    path.write_text(TINY.replace('name = "tiny-mlp"', 'name = "long"').replace("epochs = 4", "epochs = 1000000")
                  .replace("shuffle = true", "shuffle = false"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([sys.executable, "-m", "harness", "run", str(path), "--frameworks", "keras",
                                "--dtype", "float64"], cwd=ROOT, env=env, stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True, **INTERRUPTIBLE)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None and not any(
                loaded(pid, "tensorflow") for pid in [process.pid, *descendants(process.pid)]):
            time.sleep(0.2)
        time.sleep(2)  # the model is built and compiled; the loop starts
        assert process.poll() is None, "the run ended before it could be interrupted"
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        code = process.wait(timeout=120)
        assert code == 130, f"exit {code}: {process.stderr.read()[-2000:]}"
        assert time.monotonic() - sent < 60
        assert process.stderr.read().splitlines()[-1] == "nn-parity: interrupted"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
