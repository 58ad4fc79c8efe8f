"""The submission's own process: ``harness.answers.sandbox`` runs this file as a script
(``python -I -B sandbox_child.py IO_DIR``) for every call of a submitted file.

It reads the request and the inputs from ``IO_DIR``, becomes the submission's supervisor
(``_outlive_nothing``: nothing the submission starts survives the call or the audit), caps the
memory and the files written, imports the ``.py`` file (or runs the notebook's chosen cells, then
the instructor's submission adapter) in one fresh module, calls the function once per call, and
writes what came back as data (``harness.answers.value_transfer``) with its outcome, its crash
reason (one line) and its notes. It imports the standard library, NumPy and the harness modules
that import nothing else (``harness.lifetime``, ``sandbox``, ``returned``, ``value_transfer``).
"""
from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import os
import resource
import select
import signal
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

if __name__ == "__main__":  # run as a script under -I: this checkout's harness
    sys.path.insert(1, str(Path(__file__).resolve().parents[2]))
from harness.answers.returned import crash_reason  # noqa: E402
from harness.answers.sandbox import (  # noqa: E402
    FILE_LIMIT,
    INPUTS_FILE,
    MEMORY_LIMIT,
    NO_FUNCTION,
    REQUEST_FILE,
    RESULT_FILE,
    RETURNED,
    VALUE_FILE,
    Called,
    Cell,
    SubmissionAdapter,
)
from harness.answers.value_transfer import flatten  # noqa: E402
from harness.lifetime import become_subreaper, die_with_parent, kill_descendants  # noqa: E402


def _child(io_dir: Path) -> None:
    """Read the request and inputs, cap the memory, import and call the submission, write the result."""
    request = json.loads((io_dir / REQUEST_FILE).read_text())
    _outlive_nothing(request)
    with np.load(io_dir / INPUTS_FILE, allow_pickle=False) as data:
        inputs = {name: data[name] for name in data.files}
    calls: list[list[object]] = [
        [{name: inputs[f"{d['key']}/{name}"] for name in d["params"]} if "params" in d
         else inputs[d["array"]] if "array" in d else d["number"] for d in described]
        for described in request["calls"]]
    # soft and hard: the submission cannot raise it; a tighter limit of the user's own stays
    cap = min([MEMORY_LIMIT] + [n for n in resource.getrlimit(resource.RLIMIT_AS) if n != resource.RLIM_INFINITY])
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
    path = Path(request["file"])
    sys.path.insert(0, str(path.parent))
    cells = None if request["cells"] is None else [Cell(**cell) for cell in request["cells"]]
    submission_adapter = None if request["submission_adapter"] is None \
        else SubmissionAdapter(**request["submission_adapter"])
    outcome, called = _call(path, request["function"], calls, cap=cap, cells=cells,
                            submission_adapter=submission_adapter)
    arrays: dict[str, Any] = {}
    try:
        structures = [flatten(value, arrays) for value in called.values]
    except BaseException as exc:  # whatever the returned object does when it is read
        structures, called.error = [], _crash(exc, "reading what the function returned", cap)
    np.savez(io_dir / VALUE_FILE, **arrays)
    result = {"outcome": outcome, "reason": called.error, "values": structures, "notes": called.notes}
    (io_dir / (RESULT_FILE + ".tmp")).write_text(json.dumps(result))
    os.replace(io_dir / (RESULT_FILE + ".tmp"), io_dir / RESULT_FILE)


def _outlive_nothing(request: dict[str, Any]) -> None:
    """Nothing the submission starts survives the audit. This process becomes the submission's
    supervisor and returns only in the submission's own process, forked from it:

    * the supervisor is a subreaper (``harness.lifetime.become_subreaper``): whatever the submission
      starts stays among its descendants, even a process that calls ``setsid()`` or ``setpgid()``, or
      whose parent ended; when the submission's process ends, when the audit ends (its lifeline
      reads end-of-file: the audit was killed, SIGKILL included) or when told to (SIGTERM: the
      timeout, Ctrl-C, or its parent-death signal when the audit's thread that started it ends), it
      SIGKILLs every descendant (``harness.lifetime.kill_descendants``, read from ``/proc``) and
      ends as the submission's process did (its exit code or signal);
    * the submission's process gets SIGKILL when the supervisor ends, and has at most
      ``cpu_seconds`` of CPU time (``RLIMIT_CPU``: SIGXCPU, then SIGKILL a second later)."""
    lifeline, cpu_seconds = request["lifeline"], request["cpu_seconds"]
    die_with_parent(request["parent"], sig=signal.SIGTERM)
    become_subreaper()
    told: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: told.append(signum))  # before the fork: none is lost
    supervisor = os.getpid()
    submission = os.fork()
    if submission == 0:  # the submission's process: it goes on to import and call the file
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        die_with_parent(supervisor)
        os.close(lifeline)
        soft, hard = resource.getrlimit(resource.RLIMIT_CPU)  # a tighter limit of the user's own stays
        cpu = min([cpu_seconds] + [n for n in (soft, hard) if n != resource.RLIM_INFINITY])
        resource.setrlimit(resource.RLIMIT_CPU,
                           (cpu, cpu + 1 if hard == resource.RLIM_INFINITY or cpu < hard else cpu))
        return
    status = _supervise(submission, lifeline, told)
    kill_descendants(supervisor)
    with contextlib.suppress(ChildProcessError):  # the ended processes it adopted: reaped, not left as zombies
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    _end_as(status)


def _supervise(submission: int, lifeline: int, told: list[int]) -> int | None:
    """Wait until the submission's process ends (its wait status), the audit ends or SIGTERM comes
    (None)."""
    while not told:
        readable, _, _ = select.select([lifeline], [], [], 0.1)
        if readable and not os.read(lifeline, 1):  # end-of-file: the audit has ended
            return None
        pid, status = os.waitpid(submission, os.WNOHANG)
        if pid:
            return status
    return None


def _end_as(status: int | None) -> None:
    """End this process as the submission's process ended: its signal, or its exit code (killed
    when it was told to end)."""
    if status is not None and os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):  # SIGKILL has no handler to reset
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.waitstatus_to_exitcode(status) if status is not None and os.WIFEXITED(status)
             else 128 + signal.SIGKILL)


def _call(path: Path, function: str, calls: list[list[object]], *, cap: int, cells: list[Cell] | None,
          submission_adapter: SubmissionAdapter | None) -> tuple[str, Called]:
    """(outcome, what the function returned or why it did not)."""
    module = ModuleType(f"audited_{path.stem}")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # as an import would: dataclasses and pickling in the file look it up
    notes: list[str] = []
    where = f"importing {path.name}"
    try:
        if cells is None:
            spec = importlib.util.spec_from_file_location(module.__name__, path)
            if spec is None or spec.loader is None:
                return RETURNED, Called(error=f"{path.name} cannot be imported as a Python source file")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        for cell in cells or []:
            where = f"running {path.name} {cell.label}"
            _run_cell(cell, f"{path.name} {cell.label}", module, notes)
        if submission_adapter is not None:
            where = f"running the adapter {submission_adapter.name}"
            exec(compile(submission_adapter.source, submission_adapter.name, "exec"), module.__dict__)
        fn = getattr(module, function, None)
    except BaseException as exc:  # whatever the file does, it is reported, never raised
        return RETURNED, Called(error=_crash(exc, where, cap), notes=notes)
    if not callable(fn):
        return NO_FUNCTION, Called(notes=notes)
    values = []
    for arguments in calls:
        try:
            values.append(fn(*arguments))
        except BaseException as exc:
            return RETURNED, Called(error=_crash(exc, "the function", cap), notes=notes)
    return RETURNED, Called(values=values, notes=notes)


def _run_cell(cell: Cell, filename: str, module: ModuleType, notes: list[str]) -> None:
    """The cell's chosen statements, one at a time in ``module``'s namespace; a failed import is noted."""
    tree = ast.parse(cell.source, filename)
    for index, stmt in enumerate(tree.body):
        if cell.keep is not None and index not in cell.keep:
            continue
        code = compile(ast.Module(body=[stmt], type_ignores=[]), filename, "exec")
        try:
            exec(code, module.__dict__)
        except ImportError as exc:
            if not isinstance(stmt, (ast.Import, ast.ImportFrom)):
                raise
            notes.append(f"{cell.label}, line {stmt.lineno}: {crash_reason(exc, 'the import')}; "
                         "the notebook ran on without it")


def _crash(exc: BaseException, where: str, cap: int) -> str:
    reason = crash_reason(exc, where)
    return reason + (f" (the memory cap is {cap / 2**30:g} GiB)" if isinstance(exc, MemoryError) else "")


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
    os._exit(0)  # the result is written: the submission's atexit handlers and threads cannot change the outcome
