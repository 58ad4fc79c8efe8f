"""Nothing a submission starts outlives ``nn-parity audit`` (issue 25, item 2): a real audit
process auditing a real submission that spins and has started a sleeping child of its own gets
SIGKILL (a CI job limit, the OOM killer: nothing of the audit's own runs); the submission's
process (``PR_SET_PDEATHSIG``) and its child (the guardian in the submission's process group,
woken by the audit's lifeline) end with it. A submission that spins longer than its CPU time
allows is killed by ``RLIMIT_CPU`` even when its wall-clock timeout is far off."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.submissions import run_submission

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = str(ROOT / "scenarios" / "keys" / "audits" / "xor-relu-sigmoid.toml")

SPINNER = """\
import os, pathlib, subprocess, sys
sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])

def backward(params, X, y):
    pathlib.Path({pids!r}).write_text(f"{{os.getpid()}} {{sleeper.pid}}")
    while True:
        pass
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_audit_leaves_nothing_of_the_submission_running(tmp_path: Path, gone, still_running,
                                                                    sig: int) -> None:
    pids = tmp_path / "pids.txt"
    (tmp_path / "spinner.py").write_text(SPINNER.format(pids=str(pids)))
    audit = subprocess.Popen([sys.executable, "-m", "harness", "audit", "spinner.py", "--function", "backward",
                              "--scenario", SCENARIO, "--timeout", "600"], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (pids.exists() and " " in pids.read_text()):
        time.sleep(0.1)
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 2 and still_running(started, 0.5)  # both run, the audit waiting
    audit.send_signal(sig)
    audit.wait(timeout=30)
    assert audit.returncode == (143 if sig == signal.SIGTERM else -sig)  # SIGTERM: handled as Ctrl-C, exit 143
    survivors = [pid for pid in started if not gone(pid, 10)]
    for pid in survivors:  # not to leave them running when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"{survivors} outlived the audit"


ESCAPER = """\
import os, pathlib, time

def backward(params, X, y):
    child = os.fork()
    if child == 0:  # leaves the submission's session and process group, then outlives it if it can
        os.setsid()
        if os.fork() == 0:
            os.setpgid(0, 0)
            pathlib.Path({pids!r}).write_text(str(os.getpid()))
            time.sleep(600)
        os._exit(0)  # the grandchild is an orphan now
    os.waitpid(child, 0)
    while not pathlib.Path({pids!r}).exists():
        time.sleep(0.01)
    return {{"w": [0.0]}}
"""


# times-out waits out its 20 s timeout: slow
@pytest.mark.parametrize("ending", ["returns", pytest.param("times-out", marks=pytest.mark.slow)])
def test_a_process_that_leaves_the_session_does_not_outlive_the_audit(tmp_path: Path, gone, ending: str) -> None:
    """A submission whose grandchild calls setsid() and setpgid() and is orphaned: it is gone once
    ``run_submission`` returns, whether the function returned or timed out."""
    pids = tmp_path / "escaped.txt"
    source = ESCAPER.format(pids=str(pids))
    if ending == "times-out":
        source = source.replace('    return {"w": [0.0]}', '    time.sleep(600)')
    (tmp_path / "escaper.py").write_text(source)
    returned = run_submission(tmp_path / "escaper.py", "backward", {"w": np.zeros(1)}, np.zeros((1, 1)),
                              np.zeros((1, 1)), labels={"w": "w"}, timeout=60.0 if ending == "returns" else 20.0)
    assert pids.exists(), returned.error
    escaped = int(pids.read_text())
    if ending == "returns":
        assert not returned.error and returned.arrays["w"].tolist() == [0.0], returned.error
    else:
        assert returned.error == "timed out after 20 s"
    survived = not gone(escaped, 10)
    if survived:
        os.kill(escaped, signal.SIGKILL)
    assert not survived, "the setsid() grandchild outlived the audit"


@pytest.mark.slow  # spins until it has used up its second of CPU time
def test_cpu_time_is_bounded_whatever_the_wall_clock_timeout(tmp_path: Path) -> None:
    """RLIMIT_CPU of 1 s with a wall clock of 600 s: the spinning submission is killed by SIGXCPU."""
    (tmp_path / "spin.py").write_text("def backward(params, X, y):\n    while True:\n        pass\n")
    start = time.monotonic()
    returned = run_submission(tmp_path / "spin.py", "backward", {"w": np.zeros(1)}, np.zeros((1, 1)),
                              np.zeros((1, 1)), labels={"w": "w"}, timeout=600.0, cpu_seconds=1)
    assert returned.error.startswith("the process was killed by SIGXCPU"), returned.error
    assert time.monotonic() - start < 120  # a second of CPU, however loaded the machine
