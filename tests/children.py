"""Child processes that a test interrupts with Ctrl-C (SIGINT).

A shell without job control (``make test &``, ``nohup``, ``setsid``, some CI runners) starts its
background jobs with SIGINT ignored, and an ignored signal stays ignored across fork and exec: a
child started from such a test session would never see the Ctrl-C the test sends. Start every
child a test interrupts with ``**INTERRUPTIBLE``: SIGINT is set back to its default action before
the exec, and Python then installs its own handler (KeyboardInterrupt), as in a terminal.
"""
from __future__ import annotations

import signal
from pathlib import Path


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


INTERRUPTIBLE = {"preexec_fn": _sigint_default}


def descendants(pid: int) -> list[int]:
    """The processes ``pid`` started, and theirs (``/proc``; Linux)."""
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


def loaded(pid: int, library: str) -> bool:
    """Whether process ``pid`` has mapped a file whose path contains ``library``."""
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
