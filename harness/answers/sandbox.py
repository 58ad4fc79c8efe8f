"""The file ``nn-parity audit`` audits, run in its own process (``call_submission``).

``audit`` EXECUTES the submitted code. ``call_submission`` confines it — this is no security
sandbox: the code can still read every file and use the network the user can:

* its own process: ``python -I -B`` running ``harness/answers/sandbox_child.py`` (no ``PYTHON*``
  environment variables, no user site-packages, no bytecode written beside the submission), in
  a new session, under a supervisor that ends every process the submission started, even one
  that left the session or the process group (``setsid``, ``setpgid``), when the call ends and
  when the audit's process ends however it ends (``sandbox_child._outlive_nothing``: a
  subreaper, ``PR_SET_PDEATHSIG`` and the audit's lifeline); stdin empty, stdout discarded,
  stderr kept for the crash reason;
* a CPU-time limit per process (``RLIMIT_CPU``: the timeout times the number of cores, plus 1 s);
* a wall-clock timeout (``TIMEOUT`` = 60 s, ``nn-parity audit --timeout``) for the whole
  process: interpreter start, import and call;
* a memory cap: ``RLIMIT_AS`` = ``MEMORY_LIMIT`` (4 GiB of address space), soft and hard,
  set before the file is imported: an allocation beyond it raises ``MemoryError``; and no
  file the child writes may grow beyond ``FILE_LIMIT`` (256 MiB, ``RLIMIT_FSIZE``);
* a fresh temporary working directory, deleted afterwards; the inputs and results live in a
  sibling directory, not in the working directory;
* the submission's own folder first on ``sys.path``, so sibling imports work.

A ``.py`` submission is imported as a module. A notebook's code (``cells``: the statements
``harness.answers.notebook.select_code`` chose) is run statement by statement, cell after
cell, in one fresh module's namespace, each compiled under the name ``<notebook> cell N (In
[k])`` so that a traceback names the cell; an ``import`` that fails (a plotting or data
library the grading machine lacks) is noted in ``Called.notes`` and the run goes on — if
the function needs the name, calling it fails with a ``NameError``, which is a crash, never a
pass. A ``SubmissionAdapter`` (``--adapter``: the instructor's own code, e.g. a function
wrapping a student's class in the ``(params, X, y)`` interface) runs last in the same namespace.

The function's arguments (parameter dicts, arrays and numbers, float64) go in as an ``.npz``
file and a JSON request; what it returned comes back as data, never unpickled
(``harness.answers.value_transfer``). Any end other than "returned a result" — an exception in
the file or the function, ``sys.exit``, ``os._exit``, a signal, the timeout — is
``Called.error``, one line. Each kind's audit reads the values (``harness.answers.returned``:
gradients and parameters); a value that is not what its kind returns makes every scored
quantity ``crashed`` with the reason.

The child imports this module (the request's files, ``Cell``, ``SubmissionAdapter``,
``Called``): it imports only the standard library and NumPy.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.answers.value_transfer import last_line, unflatten

TIMEOUT = 60.0  # seconds of wall clock for the whole child process
MEMORY_LIMIT = 4 * 2**30  # bytes of address space (RLIMIT_AS) in the child
FILE_LIMIT = 256 * 2**20  # bytes of any one file the child writes (RLIMIT_FSIZE): no filling the disk

# the files the audit and the child exchange in their io folder, and the child's outcomes: a result (or
# its error), or no such function
REQUEST_FILE, INPUTS_FILE, VALUE_FILE, RESULT_FILE, STDERR_FILE = (
    "request.json", "inputs.npz", "value.npz", "result.json", "stderr.txt")
RETURNED, NO_FUNCTION = "returned", "no such function"
_CHILD = Path(__file__).resolve().with_name("sandbox_child.py")  # the script the child process runs
_STDERR_TAIL = 65536  # bytes of the child's stderr read for its last line
_RUNNING: set[int] = set()  # process groups of the submissions running now (a batch runs several)
_RUNNING_LOCK = threading.Lock()
_LIFELINE: int | None = None  # the read end of the lifeline (``_lifeline``); its write end is never closed
_SUPERVISOR_GRACE = 10.0  # seconds a supervisor has to end what the submission started, once told to


@dataclass
class Cell:
    """One notebook code cell as the child runs it: its source and the indices of the top-level
    statements to run (``None``: every one)."""
    label: str  # "cell 7 (In [34])": in tracebacks and crash reasons
    source: str
    keep: list[int] | None = None


@dataclass
class SubmissionAdapter:
    """The instructor's code run after the submission in its namespace (``nn-parity audit --adapter``),
    e.g. a function wrapping a student's class in the ``(params, X, y)`` interface."""
    name: str  # the adapter file's name, in tracebacks and crash reasons
    source: str


@dataclass
class Called:
    """What a submitted function returned, once per call (each value's structure, its numeric leaves as
    float64 arrays or Python numbers), or why it returned nothing (``error``, one line)."""
    values: list[object] = field(default_factory=list)  # one per call
    error: str = ""
    notes: list[str] = field(default_factory=list)  # imports of a notebook that failed, and the run went on


class NoSuchFunction(Exception):
    """The submitted file imported, but defines no callable of the name asked for."""


Argument = dict[str, np.ndarray] | np.ndarray | float | int


def call_submission(path: Path, function: str, calls: list[list[Argument]], *, timeout: float = TIMEOUT,
                    cells: list[Cell] | None = None, submission_adapter: SubmissionAdapter | None = None,
                    cpu_seconds: int | None = None) -> Called:
    """``function(*arguments)`` of the file ``path`` for each ``arguments`` of ``calls``, in turn, in one
    child process (see the module): the Python file ``path`` imported, or, with ``cells``, those cells
    of the notebook ``path`` run; then ``submission_adapter``. Each argument is a dict of arrays (parameters), an
    array or a number, passed as float64; ``Called.values`` holds one value per call. Each of the
    child's processes has ``cpu_seconds`` of CPU time (default: the timeout times the number of
    cores, plus one: never tighter than the wall clock).

    Raises ``NoSuchFunction`` when the file imports but defines no such callable."""
    with tempfile.TemporaryDirectory(prefix="nn-parity-audit-", ignore_cleanup_errors=True) as tmp:
        io_dir, work = Path(tmp, "io"), Path(tmp, "work")
        io_dir.mkdir()
        work.mkdir()
        inputs: dict[str, Any] = {}
        described: list[list[dict[str, Any]]] = []
        for k, arguments in enumerate(calls):
            described.append([])
            for i, argument in enumerate(arguments):
                key = f"{k}/{i}"
                if isinstance(argument, dict):
                    described[-1].append({"params": list(argument), "key": key})
                    inputs.update({f"{key}/{name}": np.asarray(v, dtype=np.float64) for name, v in argument.items()})
                elif isinstance(argument, np.ndarray):
                    described[-1].append({"array": key})
                    inputs[key] = np.asarray(argument, dtype=np.float64)
                else:
                    described[-1].append({"number": argument})
        request = {"file": str(path.resolve()), "function": function, "calls": described,
                   "lifeline": _lifeline(), "parent": os.getpid(),
                   "cpu_seconds": math.ceil(timeout) * (os.cpu_count() or 1) + 1 if cpu_seconds is None
                   else cpu_seconds,
                   "cells": None if cells is None else [vars(cell) for cell in cells],
                   "submission_adapter": None if submission_adapter is None else vars(submission_adapter)}
        (io_dir / REQUEST_FILE).write_text(json.dumps(request))
        np.savez(io_dir / INPUTS_FILE, **inputs)
        with open(io_dir / STDERR_FILE, "wb") as stderr:
            child = subprocess.Popen([sys.executable, "-I", "-B", str(_CHILD), str(io_dir)],
                                     cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                     start_new_session=True, pass_fds=(_lifeline(),))
            with _RUNNING_LOCK:
                _RUNNING.add(child.pid)
            code: int | None = None
            try:
                code = child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            finally:  # the child and anything it started, before the directory goes
                if code is None:  # still running: its supervisor ends what the submission started, then itself
                    _end_supervisor(child.pid)
                    try:
                        child.wait(timeout=_SUPERVISOR_GRACE)
                    except subprocess.TimeoutExpired:
                        pass
                _kill_group(child.pid)
                with _RUNNING_LOCK:  # before the pid is reaped (and could be reused): stop_all never kills a stranger
                    _RUNNING.discard(child.pid)
                child.wait()
        if code is None:
            return Called(error=f"timed out after {timeout:g} s")
        return _read_result(io_dir, code, function)


def _lifeline() -> int:
    """The read end of this process's lifeline: a pipe whose write end only this process holds
    (never inherited: ``os.pipe`` is close-on-exec, workers are spawned), so it reads end-of-file
    exactly when this process has ended, however (SIGKILL included)."""
    global _LIFELINE
    with _RUNNING_LOCK:
        if _LIFELINE is None:
            _LIFELINE = os.pipe()[0]
        return _LIFELINE


def stop_all() -> None:
    """End every submission still running (a batch interrupted by Ctrl-C): each supervisor ends what
    its submission started, then itself, and each ``call_submission`` waiting on one returns."""
    with _RUNNING_LOCK:
        supervisors = list(_RUNNING)
    for pid in supervisors:
        _end_supervisor(pid)


def _end_supervisor(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):  # it has ended
        pass


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # the group is gone
        pass


def _read_result(io_dir: Path, code: int, function: str) -> Called:
    if code != 0 or not (io_dir / RESULT_FILE).is_file():
        return Called(error=_exit_reason(code, _last_stderr_line(io_dir / STDERR_FILE)))
    try:
        result = json.loads((io_dir / RESULT_FILE).read_text())
        if result["outcome"] == NO_FUNCTION:
            raise NoSuchFunction(function)
        if result["outcome"] != RETURNED:
            raise ValueError(f"unknown outcome {result['outcome']!r}")
        with np.load(io_dir / VALUE_FILE, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name], dtype=np.float64) for name in data.files}
        notes = [last_line(str(note)) for note in list(result["notes"])]
        error = last_line(str(result["reason"]))
        values = [] if error else [unflatten(v, arrays) for v in result["values"]]
        return Called(values=values, error=error, notes=notes)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        return Called(error=f"the child process left an unreadable result ({last_line(str(exc))})")


def _exit_reason(code: int, stderr_line: str) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        reason = f"the process was killed by {name}" + (" (out of memory?)" if -code == signal.SIGKILL else "")
    else:
        reason = f"the process exited with code {code} without returning a result"
    return reason + (f"; last line of its stderr: {stderr_line}" if stderr_line else "")


def _last_stderr_line(path: Path) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - _STDERR_TAIL))
        return last_line(f.read().decode("utf-8", "replace"))
