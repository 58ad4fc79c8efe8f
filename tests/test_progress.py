"""The overall progress line (``harness.run.progress``; issues 22 item 4 and 24): on a terminal,
stderr shows the fraction done and an estimate of the time left; stdout and the files written never
hold it; without a terminal, a plain line at most every 30 s. The terminal is a real pseudo-terminal
(``pty``) on the CLI's stderr."""
from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.run import progress

ROOT = Path(__file__).resolve().parent.parent
TINY = str(ROOT / "tests" / "scenarios" / "tiny-mlp.toml")
LINE = re.compile(r"(\d+)/(\d+) (runs|answers) \((\d+)%\), \d\d:\d\d elapsed, about (\d\d:\d\d) left")


def _on_a_terminal(*args: str) -> tuple[int, str, str]:
    """The CLI with its stderr on a pseudo-terminal: exit code, stdout, and what the terminal showed."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=follower, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    os.close(follower)
    shown = b""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other side is closed: the command has ended
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    os.close(leader)
    stdout, _ = process.communicate(timeout=60)
    return process.returncode, stdout.decode(), shown.decode(errors="replace")


@pytest.mark.slow  # a real torch worker
def test_run_on_a_terminal_shows_the_fraction_done_and_the_time_left(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    code, stdout, shown = _on_a_terminal("run", TINY, "--frameworks", "numpy,torch", "--no-cache", "--json",
                                         str(out))
    assert code == 0, shown
    found = LINE.findall(shown)
    assert found, shown
    assert all(unit == "runs" and total == "4" for _, total, unit, _, _ in found), found  # 2 runs x 2 dtypes
    assert any(0 < int(done) < 4 for done, *_ in found), found  # seen part-way, with an estimate
    assert "elapsed" not in stdout and "\r" not in stdout
    assert "elapsed" not in out.read_text()
    json.loads(out.read_text())
    assert "tiny-mlp x torch (float64): ok" in shown  # the command's own lines, above the bar


def test_check_on_a_terminal_counts_answers() -> None:
    code, stdout, shown = _on_a_terminal("check", str(ROOT / "scenarios" / "keys" / "004-homework.toml"),
                                         "--frameworks", "numpy", "--no-cache")
    assert code == 1 and "problem 2 test accuracy: implausible" in shown, shown  # the key's own verdict
    found = LINE.findall(shown)
    assert found and {unit for _, _, unit, _, _ in found} == {"answers"}, shown
    assert "elapsed" not in stdout


@pytest.mark.slow  # a real torch worker
def test_without_a_terminal_nothing_garbles_stdout_or_the_json(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    done = subprocess.run([sys.executable, "-m", "harness", "run", TINY, "--frameworks", "numpy,torch",
                           "--no-cache", "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "\x1b" not in done.stderr
    assert "elapsed" not in done.stdout and "elapsed" not in out.read_text()
    json.loads(out.read_text())
    assert done.stdout.startswith("# tiny-mlp:")


def test_without_a_terminal_a_plain_line_every_so_often() -> None:
    stream = io.StringIO()
    with progress.overall(progress.RUNS, stream=stream, every=0.0):
        progress.expect(4, progress.RUNS)
        progress.expect(3, progress.ANSWERS)  # another unit: not this command's
        progress.done(progress.RUNS)
        progress.say("a line of the command's own")
        progress.done(progress.RUNS, 3)
    lines = stream.getvalue().splitlines()
    assert lines[1] == "a line of the command's own"
    assert [LINE.search(lines[0]).group(1, 2, 4), LINE.search(lines[2]).group(1, 2, 4)] == [  # type: ignore[union-attr]
        ("1", "4", "25"), ("4", "4", "100")]
    quiet = io.StringIO()
    with progress.overall(progress.RUNS, stream=quiet, every=3600.0):
        progress.expect(2, progress.RUNS)
        progress.done(progress.RUNS, 2)
    assert quiet.getvalue() == ""  # no line before `every` seconds
    progress.done(progress.RUNS)  # outside a command: nothing
