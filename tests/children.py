"""Child processes that a test interrupts with Ctrl-C (SIGINT).

A shell without job control (``make test &``, ``nohup``, ``setsid``, some CI runners) starts its
background jobs with SIGINT ignored, and an ignored signal stays ignored across fork and exec: a
child started from such a test session would never see the Ctrl-C the test sends. Start every
child a test interrupts with ``**INTERRUPTIBLE``: SIGINT is set back to its default action before
the exec, and Python then installs its own handler (KeyboardInterrupt), as in a terminal.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Callable


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


INTERRUPTIBLE = {"preexec_fn": _sigint_default}


def descendants(pid: int) -> list[int]:
    """The processes ``pid`` started, and theirs (``/proc``; Linux), zombies included. Written
    here, not imported from ``harness.lifetime.descendants``: the tests that assert nothing
    survives must not find the survivors with the code under test."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    """The CPU seconds process ``pid`` has used so far (user and system; ``/proc``), 0.0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loaded(pid: int, library: str) -> bool:
    """Whether process ``pid`` has mapped a file whose path contains ``library``."""
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


# A sitecustomize.py that makes `import MODULE` (an import statement, not importlib.util.find_spec)
# write the file MARKER.<pid> and then sleep SECONDS: a framework import that is slow, or hangs.
SLOW_IMPORT = """\
import os, sys, time

class _SlowImport:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r} and _importing():
            open({marker!r} + "." + str(os.getpid()), "w").close()
            time.sleep({seconds!r})
        return None

def _importing():
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "_find_and_load_unlocked":
            return True
        frame = frame.f_back
    return False

sys.meta_path.insert(0, _SlowImport())
"""


def slow_import(folder: Path, *, module: str, seconds: float, marker: Path) -> dict[str, str]:
    """The environment of a child whose processes (the CLI and its workers) take ``seconds`` to
    ``import module``, each saying so in ``marker.<pid>`` when it starts to (``SLOW_IMPORT``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SLOW_IMPORT.format(module=module, marker=str(marker),
                                                                seconds=seconds))
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]),
            "TF_CPP_MIN_LOG_LEVEL": "3"}


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def wait_for(condition: Callable[[], object], *, limit: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``limit`` seconds (generous:
    an event awaited, never a guess at how long something takes)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {limit:g} s")
        time.sleep(0.05)


def survivors(pids: list[int], *, limit: float = 30.0) -> list[int]:
    """Those of ``pids`` still running after up to ``limit`` seconds (each killed, so that a failing
    test leaves nothing behind)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and any(running(pid) for pid in pids):
        time.sleep(0.05)
    left = [pid for pid in pids if running(pid)]
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return left
