"""The file ``nn-parity audit`` audits, run in its own process.

``audit`` EXECUTES the submitted code. ``run_submission`` confines it — this is no security
sandbox: the code can still read every file and use the network the user can:

* its own process: ``python -I -B`` running this file (no ``PYTHON*`` environment variables,
  no user site-packages, no bytecode written beside the submission), in a new session, under a
  supervisor that ends every process the submission started, even one that left the session or
  the process group (``setsid``, ``setpgid``), when the call ends and when the audit's process
  ends however it ends (``_outlive_nothing``: a subreaper, ``PR_SET_PDEATHSIG`` and the audit's
  lifeline); stdin empty, stdout discarded, stderr kept for the crash reason;
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
library the grading machine lacks) is noted in ``Returned.notes`` and the run goes on — if
the function needs the name, calling it fails with a ``NameError``, which is a crash, never a
pass. An ``adapter`` (the instructor's own code, e.g. a function wrapping a student's class
in the ``(params, X, y)`` interface) runs last in the same namespace.

The function's arguments (``call_submission``: parameter dicts, arrays and numbers, float64)
go in as an ``.npz`` file and a JSON request; what it returned comes back as data
(``_flatten``): its structure as JSON (dicts, lists, tuples, numbers, ``None``) and its
numeric leaves as float64 arrays in an ``.npz`` read with ``allow_pickle=False`` (a list of
items of one structure, such as a training history, as one stacked array per leaf); a leaf
that is not numeric comes back as ``Opaque`` (its type and why). No object the submission
made is unpickled in the harness. Any end other than "returned a result" — an exception in
the file or the function, ``sys.exit``, ``os._exit``, a signal, the timeout — is
``Called.error``, one line. ``run_submission`` is the gradient audit's call, ``(params, X, y)
-> gradients``: a return value that is not gradients is ``Returned.error`` too, and the audit
makes every parameter ``crashed`` with it. ``read_returned`` reads a return value the same way
for a callable run in process (``harness.answers.audit.audit_gradients``).

Run as a script in the child, this module imports only the standard library and NumPy.
"""
from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import math
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

if __name__ == "__main__":  # the child, run as a script under -I: this checkout's harness.lifetime
    sys.path.insert(1, str(Path(__file__).resolve().parents[2]))
from harness.lifetime import become_subreaper, die_with_parent, kill_descendants  # noqa: E402

TIMEOUT = 60.0  # seconds of wall clock for the whole child process
MEMORY_LIMIT = 4 * 2**30  # bytes of address space (RLIMIT_AS) in the child
FILE_LIMIT = 256 * 2**20  # bytes of any one file the child writes (RLIMIT_FSIZE): no filling the disk

_REQUEST, _INPUTS, _VALUE, _RESULT, _STDERR = (
    "request.json", "inputs.npz", "value.npz", "result.json", "stderr.txt")
_RETURNED, _NO_FUNCTION = "returned", "no such function"  # outcomes: a result (or its error), or no function
_STDERR_TAIL = 65536  # bytes of the child's stderr read for its last line
_LINE = 300  # characters of a reason kept from the child
_RUNNING: set[int] = set()  # process groups of the submissions running now (a batch runs several)
_RUNNING_LOCK = threading.Lock()
_LIFELINE: int | None = None  # the read end of the lifeline (``_lifeline``); its write end is never closed
_SUPERVISOR_GRACE = 10.0  # seconds a supervisor has to end what the submission started, once told to


@dataclass
class Returned:
    """What the audited function returned, by reference parameter name (``layers.<i>.kernel``)."""
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # read as float64
    unreadable: dict[str, str] = field(default_factory=dict)  # name -> why its value is not a numeric array
    error: str = ""  # why there are no gradients at all: the function (or its process) crashed
    notes: list[str] = field(default_factory=list)  # imports of a notebook that failed, and the run went on


@dataclass
class Cell:
    """One notebook code cell as the child runs it: its source and the indices of the top-level
    statements to run (``None``: every one)."""
    label: str  # "cell 7 (In [34])": in tracebacks and crash reasons
    source: str
    keep: list[int] | None = None


@dataclass
class Adapter:
    """Code run after the submission in its namespace (``nn-parity audit --adapter``)."""
    name: str  # the adapter file's name, in tracebacks and crash reasons
    source: str


@dataclass
class Called:
    """What a submitted function returned, once per call (each value's structure, its numeric leaves as
    float64 arrays or Python numbers), or why it returned nothing (``error``, one line)."""
    values: list[object] = field(default_factory=list)  # one per call
    error: str = ""
    notes: list[str] = field(default_factory=list)  # imports of a notebook that failed, and the run went on


@dataclass(frozen=True)
class Opaque:
    """A returned value that is not numeric data (an object of the submission's own): its type and why."""
    type_name: str
    reason: str


class NoSuchFunction(Exception):
    """The submitted file imported, but defines no callable of the name asked for."""


def type_name(value: object) -> str:
    """The type of a returned value as the submission made it (an ``Opaque``'s own type)."""
    return value.type_name if isinstance(value, Opaque) else type(value).__name__


def read_returned(returned: object, labels: dict[str, str]) -> Returned:
    """A return value read as gradients: a dict keyed by reference names or the labs' labels
    (``labels``: name -> label, in parameter order), or a tuple/list in parameter order."""
    names = list(labels)
    if isinstance(returned, dict):
        by_label = {label: name for name, label in labels.items()}
        values = {by_label.get(str(k), str(k)): v for k, v in returned.items()}
    elif isinstance(returned, (tuple, list)):
        if len(returned) != len(names):
            return Returned(error=f"the function returned {len(returned)} values for {len(names)} parameters {names}")
        values = dict(zip(names, returned))
    else:
        return Returned(error=f"the function returned a {type_name(returned)}, not a dict or tuple of gradients")
    out = Returned()
    for name in names:
        if name not in values:
            continue
        if isinstance(values[name], Opaque):
            out.unreadable[name] = f"not a numeric array ({values[name].reason})"
            continue
        try:
            out.arrays[name] = np.asarray(values[name], dtype=np.float64)
        except Exception as exc:  # whatever the value is, it is not a gradient
            out.unreadable[name] = f"not a numeric array ({_one_line(str(exc))})"
    return out


def crash_reason(exc: BaseException, where: str) -> str:
    """``where`` (e.g. "the function") raised ``exc``: its type and the last line of its message."""
    if isinstance(exc, SystemExit):
        return f"{where} called sys.exit({exc.code!r})"
    message = _one_line(str(exc))
    return f"{where} raised {type(exc).__name__}" + (f": {message}" if message else "")


def run_submission(path: Path, function: str, params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray, *,
                   labels: dict[str, str], timeout: float = TIMEOUT, cells: list[Cell] | None = None,
                   adapter: Adapter | None = None, cpu_seconds: int | None = None) -> Returned:
    """``function(params, X, y)`` of the file ``path`` (``call_submission``), read as gradients
    (``read_returned``: ``labels`` maps each parameter's name to the labs' label, in order).

    Raises ``NoSuchFunction`` when the file imports but defines no such callable."""
    called = call_submission(path, function, [[{name: params[name] for name in labels}, X, y]], timeout=timeout,
                             cells=cells, adapter=adapter, cpu_seconds=cpu_seconds)
    if called.error:
        return Returned(error=called.error, notes=called.notes)
    returned = read_returned(called.values[0], labels)
    returned.notes = called.notes
    return returned


Argument = dict[str, np.ndarray] | np.ndarray | float | int


def call_submission(path: Path, function: str, calls: list[list[Argument]], *, timeout: float = TIMEOUT,
                    cells: list[Cell] | None = None, adapter: Adapter | None = None,
                    cpu_seconds: int | None = None) -> Called:
    """``function(*arguments)`` of the file ``path`` for each ``arguments`` of ``calls``, in turn, in one
    child process (see the module): the Python file ``path`` imported, or, with ``cells``, those cells
    of the notebook ``path`` run; then ``adapter``. Each argument is a dict of arrays (parameters), an
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
                   "adapter": None if adapter is None else vars(adapter)}
        (io_dir / _REQUEST).write_text(json.dumps(request))
        np.savez(io_dir / _INPUTS, **inputs)
        with open(io_dir / _STDERR, "wb") as stderr:
            child = subprocess.Popen([sys.executable, "-I", "-B", str(Path(__file__).resolve()), str(io_dir)],
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
    its submission started, then itself, and each ``run_submission`` waiting on one returns."""
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
    if code != 0 or not (io_dir / _RESULT).is_file():
        return Called(error=_exit_reason(code, _last_line(io_dir / _STDERR)))
    try:
        result = json.loads((io_dir / _RESULT).read_text())
        if result["outcome"] == _NO_FUNCTION:
            raise NoSuchFunction(function)
        if result["outcome"] != _RETURNED:
            raise ValueError(f"unknown outcome {result['outcome']!r}")
        with np.load(io_dir / _VALUE, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name], dtype=np.float64) for name in data.files}
        notes = [_one_line(str(note)) for note in list(result["notes"])]
        error = _one_line(str(result["reason"]))
        values = [] if error else [_unflatten(v, arrays) for v in result["values"]]
        return Called(values=values, error=error, notes=notes)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        return Called(error=f"the child process left an unreadable result ({_one_line(str(exc))})")


def _unflatten(structure: Any, arrays: dict[str, np.ndarray], index: tuple[int, ...] = ()) -> object:
    """The value ``_flatten`` described (``index``: the item of a stacked list being rebuilt)."""
    kind = structure["kind"]
    if kind == "none":
        return None
    if kind == "opaque":
        return Opaque(str(structure["type"]), _one_line(str(structure["reason"])))
    if kind == "leaf":
        value = arrays[structure["key"]][index] if index else arrays[structure["key"]]
        number = structure.get("number")  # a Python number: given back as one
        return {"bool": bool, "int": int, "float": float}[number](value) if number else np.array(value)
    if kind == "dict":
        return {str(k): _unflatten(v, arrays, index) for k, v in structure["items"]}
    if kind == "stack":
        items = [_unflatten(structure["item"], arrays, (*index, i)) for i in range(int(structure["length"]))]
        return tuple(items) if structure["container"] == "tuple" else items
    items = [_unflatten(v, arrays, index) for v in structure["items"]]
    return tuple(items) if kind == "tuple" else items


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


def _last_line(path: Path) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - _STDERR_TAIL))
        return _one_line(f.read().decode("utf-8", "replace"))


def _one_line(text: str) -> str:
    """The last non-blank line of ``text``, stripped and shortened."""
    line = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")
    return line if len(line) <= _LINE else line[: _LINE - 3] + "..."


# --- the child ---------------------------------------------------------------


def _child(io_dir: Path) -> None:
    """Read the request and inputs, cap the memory, import and call the submission, write the result."""
    request = json.loads((io_dir / _REQUEST).read_text())
    _outlive_nothing(request)
    with np.load(io_dir / _INPUTS, allow_pickle=False) as data:
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
    adapter = None if request["adapter"] is None else Adapter(**request["adapter"])
    outcome, called = _call(path, request["function"], calls, cap=cap, cells=cells, adapter=adapter)
    arrays: dict[str, Any] = {}
    try:
        structures = [_flatten(value, arrays) for value in called.values]
    except BaseException as exc:  # whatever the returned object does when it is read
        structures, called.error = [], _crash(exc, "reading what the function returned", cap)
    np.savez(io_dir / _VALUE, **arrays)
    result = {"outcome": outcome, "reason": called.error, "values": structures, "notes": called.notes}
    (io_dir / (_RESULT + ".tmp")).write_text(json.dumps(result))
    os.replace(io_dir / (_RESULT + ".tmp"), io_dir / _RESULT)


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
    signal.signal(signal.SIGTERM, lambda signum, frame: told.append(signum))  # before the fork: none is lost
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
          adapter: Adapter | None) -> tuple[str, Called]:
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
                return _RETURNED, Called(error=f"{path.name} cannot be imported as a Python source file")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        for cell in cells or []:
            where = f"running {path.name} {cell.label}"
            _run_cell(cell, f"{path.name} {cell.label}", module, notes)
        if adapter is not None:
            where = f"running the adapter {adapter.name}"
            exec(compile(adapter.source, adapter.name, "exec"), module.__dict__)
        fn = getattr(module, function, None)
    except BaseException as exc:  # whatever the file does, it is reported, never raised
        return _RETURNED, Called(error=_crash(exc, where, cap), notes=notes)
    if not callable(fn):
        return _NO_FUNCTION, Called(notes=notes)
    values = []
    for arguments in calls:
        try:
            values.append(fn(*arguments))
        except BaseException as exc:
            return _RETURNED, Called(error=_crash(exc, "the function", cap), notes=notes)
    return _RETURNED, Called(values=values, notes=notes)


_NUMBERS = {bool: "bool", int: "int", float: "float"}


def _flatten(value: object, arrays: dict[str, Any]) -> dict[str, Any]:
    """``value`` as data: a JSON structure whose numeric leaves are float64 arrays put in ``arrays``
    (see the module); a list of two or more items of one structure is one stacked array per leaf."""
    if value is None:
        return {"kind": "none"}
    if isinstance(value, dict):
        return {"kind": "dict", "items": [[str(k), _flatten(v, arrays)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        container = "tuple" if isinstance(value, tuple) else "list"
        parts = [_flatten(v, {}) for v in value]
        if len(value) > 1 and all(p == parts[0] for p in parts) and _stackable(parts[0]):
            leaves: list[dict[str, Any]] = []
            item = _leaves(parts[0], leaves)
            per_item = [_leaf_values(v, parts[0]) for v in value]
            for j, leaf in enumerate(leaves):
                key = f"{len(arrays)}"
                arrays[key] = np.stack([values[j] for values in per_item])
                leaf["key"] = key
            return {"kind": "stack", "container": container, "length": len(value), "item": item}
        return {"kind": container, "items": [_flatten(v, arrays) for v in value]}
    number = _NUMBERS.get(type(value))
    try:
        array = np.asarray(value, dtype=np.float64)
    except Exception as exc:  # not numeric data: its type and why, never the object itself
        return {"kind": "opaque", "type": type(value).__name__, "reason": _one_line(str(exc)) or "not numeric"}
    key = f"{len(arrays)}"
    arrays[key] = array
    return {"kind": "leaf", "key": key, "shape": list(array.shape), **({"number": number} if number else {})}


def _stackable(structure: dict[str, Any]) -> bool:
    """A structure made only of numeric leaves, dicts, lists and tuples (``None`` and opaque leaves are not)."""
    kind = structure["kind"]
    if kind == "leaf":
        return True
    if kind == "dict":
        return all(_stackable(v) for _, v in structure["items"])
    if kind == "stack":
        return _stackable(structure["item"])
    return kind in ("list", "tuple") and all(_stackable(v) for v in structure["items"])


def _leaves(structure: dict[str, Any], found: list[dict[str, Any]]) -> dict[str, Any]:
    """A copy of ``structure`` whose leaves are listed in ``found`` (in order), to be given stacked keys."""
    kind = structure["kind"]
    if kind == "leaf":
        leaf = dict(structure)
        found.append(leaf)
        return leaf
    if kind == "dict":
        return {**structure, "items": [[k, _leaves(v, found)] for k, v in structure["items"]]}
    if kind == "stack":
        return {**structure, "item": _leaves(structure["item"], found)}
    return {**structure, "items": [_leaves(v, found) for v in structure["items"]]}


def _leaf_values(value: Any, structure: dict[str, Any]) -> list[np.ndarray]:
    """``value``'s numeric leaves, in the order of ``_leaves``, as float64 arrays."""
    kind = structure["kind"]
    if kind == "leaf":
        return [np.asarray(value, dtype=np.float64)]
    if kind == "dict":
        return [a for (_, v), (_, s) in zip(value.items(), structure["items"]) for a in _leaf_values(v, s)]
    if kind == "stack":
        return [np.stack(column) for column in zip(*(_leaf_values(v, structure["item"]) for v in value))] \
            if len(value) else []
    return [a for v, s in zip(value, structure["items"]) for a in _leaf_values(v, s)]


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
