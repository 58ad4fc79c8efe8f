"""Child processes that end with the process that started them (standard library only: the audit's
sandbox child imports it too).

* ``die_with_parent``: this process gets a signal when its parent ends, however it ends (SIGKILL
  included): Linux' parent-death signal, ``prctl(PR_SET_PDEATHSIG)``. The kernel sends it when the
  *thread* that started the process ends, so a process that must live as long as its parent is
  started from a thread that lives as long (``harness.run.adapters.workers`` starts every worker
  from one such thread). A parent that ended before the call is caught by comparing ``getppid()``.
* ``become_subreaper``: the orphans among this process's descendants (a grandchild whose parent
  ended, one that called ``setsid()`` or ``setpgid()`` to leave the process group included) are
  re-parented to this process instead of to init (``prctl(PR_SET_CHILD_SUBREAPER)``), so
  ``descendants`` still finds them and ``kill_descendants`` ends them.
* ``descendants``: the processes ``pid`` started, and theirs, read from ``/proc``.

Elsewhere than Linux the calls do nothing and ``descendants`` finds nothing.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h
PR_SET_CHILD_SUBREAPER = 36
LINUX = sys.platform.startswith("linux")


def _prctl(option: int, value: int) -> None:
    if LINUX:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def die_with_parent(parent: int, *, sig: int = signal.SIGKILL) -> None:
    """Get ``sig`` when the parent (its thread that started this process) ends; get it now when the
    parent ``parent`` already ended (this process was re-parented before the call)."""
    _prctl(PR_SET_PDEATHSIG, sig)
    if LINUX and os.getppid() != parent:
        os.kill(os.getpid(), sig)


def become_subreaper() -> None:
    """Orphaned descendants of this process are re-parented to it (not to init) from now on."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def _state_and_parent(stat: str) -> tuple[str, int]:
    fields = stat.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces and ")"
    return fields[0], int(fields[1])


def descendants(pid: int) -> list[int]:
    """The live processes ``pid`` started, and theirs (``/proc``; zombies are not counted, nor
    looked into: a process that has ended has no children)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent = _state_and_parent(stat.read_text())
        except (OSError, IndexError, ValueError):  # ended while we read
            continue
        if state not in ("Z", "X"):
            children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_descendants(pid: int, *, rounds: int = 100) -> None:
    """SIGKILL every live descendant of ``pid`` until none is left (a process may fork while the
    others are killed: each round finds what the last one missed)."""
    for _ in range(rounds):
        found = descendants(pid)
        if not found:
            return
        for child in found:
            try:
                os.kill(child, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):  # already gone
                pass
