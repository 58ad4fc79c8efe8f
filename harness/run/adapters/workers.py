"""Every framework runs in a worker process of its own; the NumPy reference runs in the harness.

Keras reads ``KERAS_BACKEND`` once, at import, so Keras on JAX and Keras on torch cannot share a
process with Keras on TensorFlow; and a segfault or an out-of-memory kill in one framework must
not end the report. Each framework implementation (keras, torch, keras@jax, keras@torch) runs in
a *spawned* worker (a fresh interpreter: nothing imported before it picks its backend), reused
for every call of the command, so its framework import is paid once per command, not once per
scenario. The harness still makes the data, the initial weights and the batch order
(``TrainingPlan``) and sends them; the trajectory comes back (both pickled over a pipe). Workers
of different implementations compute at the same time (``harness.run.adapters.run_all`` feeds
each from a thread of the harness while the reference runs in the harness's own process).

``inline()`` runs keras and torch in the harness's process instead, for tests that plant a
defect by monkeypatching a framework class (a patch lives in one process); Keras on the other
backends always runs in a worker.

A worker that dies (a segfault, a kill, the out-of-memory killer) or does not answer within the
call's timeout raises ``WorkerCrashed`` with the reason: the signal or exit code and the last
line the worker wrote on stderr (its stderr goes to a temporary file, removed with the worker).
``run_framework`` turns it into a ``crashed`` run; the other runs and the report go on, and the
next call starts a new worker.

A worker starts by importing its framework, and says when it is ready; a start that takes longer
than ``start_limit()`` seconds (``$NN_PARITY_START_TIMEOUT``, default 300: a framework import that
hangs) kills the worker and is a ``crashed`` run, "did not start within N s", with or without
``--timeout``. Nothing outlives the command: every worker is started from one thread that lives as
long as the harness's process (``_Spawner``), and gets SIGKILL when that thread ends, however the
process ends (``harness.lifetime.die_with_parent``); SIGINT and SIGTERM are blocked in that thread,
so a worker starts with them blocked (a Ctrl-C during its start-up is the parent's to handle, never
a worker's KeyboardInterrupt read as a crash). The harness waits for a worker in short slices, so a
signal is handled within a fraction of a second whichever thread the kernel delivered it to.
"""
from __future__ import annotations

import atexit
import contextlib
import importlib
import math
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import tempfile
import threading
import time
from functools import partial
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from typing import Any, Callable, Iterator

import numpy as np

from harness.errors import BadInput
from harness.lifetime import die_with_parent
from harness.run.adapters.keras_backends import ADAPTERS as KERAS_BACKENDS
from harness.run.adapters.keras_backends import import_keras_on
from harness.run.adapters.keras_tf import ADAPTER as KERAS
from harness.run.adapters.keras_tf import import_keras
from harness.run.adapters.torch_eager import ADAPTER as TORCH
from harness.run.plan import TrainingPlan
from harness.run.trajectory import Trajectory
from harness.spec.scenario import OptimizerSpec, Scenario

Params = dict[str, np.ndarray]


class WorkerCrashed(Exception):
    """The worker process died or did not answer; the message says how."""


IN_WORKER: dict[str, Any] = {KERAS.name: KERAS, TORCH.name: TORCH, **KERAS_BACKENDS}
# what each worker imports before it says it is ready: its start-up, bounded by ``start_limit()``
FRAMEWORK_IMPORT: dict[str, Callable[[], object]] = {
    KERAS.name: import_keras, TORCH.name: partial(importlib.import_module, "torch"),
    **{name: partial(import_keras_on, local.backend) for name, local in KERAS_BACKENDS.items()}}
_INLINE = {"on": False}

START_VARIABLE = "NN_PARITY_START_TIMEOUT"
START_DEFAULT = 300.0  # seconds: a cold framework import on a busy laptop takes a minute at most
_MAX_SECONDS = 7 * 24 * 3600.0  # a week, as --timeout
_SLICE = 0.2  # seconds: the longest the harness blocks on a worker before it handles pending signals
_INTERRUPTS = {signal.SIGINT, signal.SIGTERM}


def start_limit() -> float:
    """``$NN_PARITY_START_TIMEOUT``: the seconds a worker may take to start (its framework import),
    300 when unset; BadInput when it is not a positive number of seconds up to a week."""
    text = os.environ.get(START_VARIABLE, "").strip()
    if not text:
        return START_DEFAULT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (0 < seconds <= _MAX_SECONDS):
        raise BadInput("environment", START_VARIABLE, "a number of seconds above 0, at most a week (604800)", text)
    return seconds


@contextlib.contextmanager
def inline() -> Iterator[None]:
    """Run keras and torch in this process while the context lasts (see the module docstring)."""
    previous = _INLINE["on"]
    _INLINE["on"] = True
    try:
        yield
    finally:
        _INLINE["on"] = previous


def inline_active() -> bool:
    """Whether ``inline()`` is in force (a monkeypatched framework may be running here)."""
    return _INLINE["on"]


def _local(implementation: str) -> Any:
    """The in-process adapter behind a worker (only ever called inside the worker)."""
    return IN_WORKER[implementation]


def _serve(implementation: str, conn: Connection, stderr_path: str, parent: int) -> None:
    """The worker: import the framework and say ``("ready", None)`` (or ``("error", exception)``),
    then the loop: ``(method, args)`` in, ``("ok", value)`` or ``("error", exception)`` out."""
    die_with_parent(parent)  # SIGKILL when the harness's process ends, however
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends the workers
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _INTERRUPTS)  # blocked by the spawner; SIGTERM ends a worker
    with open(stderr_path, "w") as log:
        os.dup2(log.fileno(), 2)
    with contextlib.suppress(OSError):  # the parent reads it through its own open handle: no file is
        os.unlink(stderr_path)  # left behind, even when the parent is killed
    try:
        FRAMEWORK_IMPORT[implementation]()
        conn.send(("ready", None, 0.0))
    except Exception as exc:
        _reply(conn, ("error", exc), 0.0)
    adapter = _local(implementation)
    while True:
        try:
            method, args = conn.recv()
        except EOFError:  # the parent is gone
            return
        start, cpu = time.perf_counter(), time.process_time()
        try:
            value = getattr(adapter, method)(*args)
            if isinstance(value, Trajectory):
                value.seconds = time.perf_counter() - start  # the run's own time, not the wait for it
            reply: tuple[str, Any] = ("ok", value)
        except Exception as exc:  # a framework error is the caller's result, not the worker's end
            reply = ("error", exc)
        _reply(conn, reply, time.process_time() - cpu)


def _reply(conn: Connection, reply: tuple[str, Any], cpu_seconds: float) -> None:
    """``(status, value, cpu_seconds)``: the call's result and the CPU time the worker spent on it."""
    try:
        if reply[0] == "error":
            pickle.loads(pickle.dumps(reply[1]))  # it must come back whole, or as its text
        conn.send((*reply, cpu_seconds))
    except Exception as exc:  # an exception that does not pickle: its text
        conn.send(("error", RuntimeError(f"{type(reply[1]).__name__}: {reply[1]}" if reply[0] == "error"
                                         else f"the result did not pickle: {exc}"), cpu_seconds))


@contextlib.contextmanager
def _main_not_reimported() -> Iterator[None]:
    """A spawned child normally re-imports the parent's ``__main__`` (its top-level code runs again
    in the worker: a user's script without an ``if __name__ == "__main__"`` guard would run twice);
    the worker needs only ``_serve``'s module, so ``__main__`` is hidden while the child starts."""
    main = sys.modules["__main__"]
    saved = {name: getattr(main, name) for name in ("__spec__", "__file__") if hasattr(main, name)}
    main.__spec__ = None
    if hasattr(main, "__file__"):
        del main.__file__
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(main, name, value)


class _Spawner:
    """One daemon thread, started once and alive until the process ends, that starts every worker:
    a worker's parent-death signal fires when the thread that started it ends, and the threads that
    feed the workers come and go. SIGINT and SIGTERM are blocked in it (and so, inherited, in a
    worker until ``_serve`` unblocks them)."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], None], list[BaseException], threading.Event]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, job: Callable[[], None]) -> None:
        """``job()`` in the spawner's thread; its exception raised here."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="nn-parity-spawner", daemon=True)
                self._thread.start()
        failed: list[BaseException] = []
        finished = threading.Event()
        self._jobs.put((job, failed, finished))
        while not finished.wait(_SLICE):  # in slices: a signal to this (main) thread is handled meanwhile
            pass
        if failed:
            raise failed[0]

    def _loop(self) -> None:
        while True:
            job, failed, finished = self._jobs.get()
            try:
                resource_tracker.ensure_running()  # started now if need be: starting it unblocks both signals
                signal.pthread_sigmask(signal.SIG_BLOCK, _INTERRUPTS)
                with _main_not_reimported():
                    job()
            except BaseException as exc:  # the caller's to raise
                failed.append(exc)
            finally:
                finished.set()


_SPAWNER = _Spawner()
_STARTED: dict[int, Worker] = {}  # every worker started and not stopped, by id: ``stop_all`` ends them all
_STARTED_LOCK = threading.Lock()
_GENERATION = [0]  # how many times ``stop_all`` ran: a worker that started meanwhile stops itself


class Worker:
    """One spawned process serving one implementation."""

    def __init__(self, implementation: str) -> None:
        self.implementation = implementation
        context = multiprocessing.get_context("spawn")
        handle, self._stderr = tempfile.mkstemp(prefix="nn-parity-worker-", suffix=".log")
        self._log = os.fdopen(handle, "rb")  # the worker's stderr, read through this handle (it unlinks the path)
        self._conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(implementation, child, self._stderr, os.getpid()),
                                       daemon=True, name=f"nn-parity {implementation}")
        self._ready = False
        self.cpu_seconds = 0.0  # the CPU time the worker spent on its last call (``time.process_time``)
        # ``stop`` once: the thread that starts a worker and ``stop_all`` (a Ctrl-C) may both stop it, and two
        # closes of one pipe race (the second closes a descriptor already freed: EBADF, or another file's)
        self._stopping, self._stopped = threading.Lock(), False
        with _STARTED_LOCK:  # against ``stop_all``'s look: a worker is either among those it ends or refused
            refused = _refused()
            if not refused:
                _STARTED[id(self)] = self
                generation = _GENERATION[0]
        if refused:
            child.close()
            self.stop()
            raise WorkerCrashed(f"the {implementation} worker was not started: the command is ending (interrupted)")
        try:
            _SPAWNER.run(self.process.start)
        finally:
            child.close()
        if _GENERATION[0] != generation:  # ``stop_all`` ran while it started (a Ctrl-C): it is not wanted
            self.stop()

    def call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        """``method(*args)`` in the worker; ``WorkerCrashed`` when it dies, does not start within
        ``start_limit()`` or exceeds ``timeout`` (which counts the start-up too)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            if not self._ready:
                limit = start_limit()
                start_deadline = time.monotonic() + limit
                if not self._wait(start_deadline if deadline is None else min(deadline, start_deadline)):
                    self.stop()
                    if deadline is not None and deadline <= start_deadline:
                        raise WorkerCrashed(f"the {self.implementation} worker did not answer within {timeout:g} s "
                                            "(killed)")
                    raise WorkerCrashed(f"the {self.implementation} worker did not start within {limit:g} s "
                                        f"(importing its framework; ${START_VARIABLE} sets the limit) and was killed")
                status, value, _ = self._conn.recv()
                if status == "error":  # the framework's import failed: its error is the run's
                    self.stop()
                    raise value
                self._ready = True
            self._conn.send((method, args))
            if not self._wait(deadline):
                self.stop()
                raise WorkerCrashed(f"the {self.implementation} worker did not answer within {timeout:g} s (killed)")
            status, value, self.cpu_seconds = self._conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
            raise WorkerCrashed(self._death()) from None
        if status == "error":
            raise value
        return value

    def _wait(self, deadline: float | None) -> bool:
        """Whether the worker has something to say before ``deadline`` (None: for ever), waited for
        in slices (a pending signal is handled between them)."""
        while True:
            left = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
            if left <= 0:
                return False
            if self._conn.poll(left):
                return True

    def _death(self) -> str:
        self.process.join(5)
        code = self.process.exitcode
        how = ("still running" if code is None else
               f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}")
        last = ""
        with contextlib.suppress(OSError, ValueError):
            self._log.seek(0)
            lines = [line.strip() for line in self._log.read().decode(errors="replace").splitlines() if line.strip()]
            last = lines[-1] if lines else ""
        self.stop()
        return f"the {self.implementation} worker process {how}" + (f"; its last words: {last[:300]}" if last else "")

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        """End the worker, whichever threads ask and however often, and free its pipe and log once
        (see ``_stopping``). A stop that came while the process was being started (``stop_all`` on a
        Ctrl-C) found nothing to end; the stop its start then makes (the generation changed) ends it."""
        with self._stopping:
            with contextlib.suppress(ValueError):  # not started yet: nothing to end
                if self.process.is_alive():
                    self.process.kill()
                    self.process.join(5)
            if self._stopped:
                return
            self._stopped = True
            with _STARTED_LOCK:
                _STARTED.pop(id(self), None)
            self._conn.close()
            self._log.close()
            with contextlib.suppress(OSError):  # a worker that died before unlinking it
                os.unlink(self._stderr)


_WORKERS: dict[str, list[Worker]] = {}  # each implementation's workers, the first one its own since it started
_BUSY: set[int] = set()  # the workers in a call, by id
_LEASES = threading.Condition()  # guards _WORKERS and _BUSY; notified when a worker is free again
_TIMEOUT: dict[str, float | None] = {"seconds": None}
_LAST_CPU: dict[str, float] = {}  # each implementation's last call's CPU seconds, whichever worker made it
_MORE = threading.local()  # ``more_workers()`` and ``none_started_once()`` in force in this thread


@contextlib.contextmanager
def run_timeout(seconds: float | None) -> Iterator[None]:
    """Every call into a worker (a run, a traced step) answers within ``seconds`` or its worker is
    killed and the run is ``crashed`` (None: no limit), while the context lasts (``--timeout``)."""
    previous = _TIMEOUT["seconds"]
    _TIMEOUT["seconds"] = seconds
    try:
        yield
    finally:
        _TIMEOUT["seconds"] = previous


@contextlib.contextmanager
def more_workers(limit: int | Callable[[], int]) -> Iterator[None]:
    """Calls made in this thread while the context lasts may start another worker of an
    implementation whose workers are all busy, up to ``limit`` workers of it (the scheduler of
    ``run_all``, when one implementation's runs are all that is left: each worker makes its own
    runs, and a run is a function of its plan, whichever worker makes it). A callable ``limit``
    is asked again each time a waiting call looks for a worker: a call that waits for a busy
    worker starts another one as soon as the scheduler allows it, instead of waiting on."""
    previous = getattr(_MORE, "limit", 1)
    _MORE.limit = limit
    try:
        yield
    finally:
        _MORE.limit = previous


@contextlib.contextmanager
def none_started_once(cancelled: threading.Event) -> Iterator[None]:
    """Calls made in this thread while the context lasts start no worker once ``cancelled`` is set:
    one that would is a ``WorkerCrashed`` run instead. For the threads of a pool that an interrupt
    joins (``run_all``'s job slots): the interrupt sets ``cancelled``, then ``stop_all`` ends every
    worker; a slot that was about to start one (it had taken its run before the interrupt) would
    otherwise start it after ``stop_all`` looked, and the interrupt would wait for its framework's
    import and its whole run (CI measured 6.8 s for a Ctrl-C while the first worker started)."""
    previous = getattr(_MORE, "cancelled", None)
    _MORE.cancelled = cancelled
    try:
        yield
    finally:
        _MORE.cancelled = previous


def _refused() -> bool:
    """Whether this thread may start no worker (``none_started_once``)."""
    cancelled = getattr(_MORE, "cancelled", None)
    return cancelled is not None and cancelled.is_set()


def _allowed() -> int:
    """The workers of an implementation that a call from this thread may use (``more_workers``)."""
    limit = getattr(_MORE, "limit", 1)
    return max(1, limit() if callable(limit) else limit)


def _live(implementation: str) -> list[Worker]:
    """``implementation``'s workers still alive (a dead one is ended and forgotten); under ``_LEASES``."""
    current = _WORKERS.get(implementation, [])
    for dead in [w for w in current if not w.alive]:
        dead.stop()
    _WORKERS[implementation] = [w for w in current if w.alive]
    return _WORKERS[implementation]


@contextlib.contextmanager
def lease(implementation: str) -> Iterator[Worker]:
    """A worker of ``implementation`` for one call, no other call using it meanwhile: a free one,
    else a new one when it has none (or fewer than ``more_workers()`` allows in this thread), else
    the first one freed. Calls from several threads (``run_all``'s feeders, diagnoses made at once)
    each get a worker of their own."""
    with _LEASES:
        while True:
            live = _live(implementation)
            free = [w for w in live if id(w) not in _BUSY]
            if free:
                chosen = free[0]
                break
            if len(live) < _allowed():
                chosen = Worker(implementation)
                live.append(chosen)
                break
            _LEASES.wait(_SLICE)  # in slices: a pending signal is handled meanwhile
        _BUSY.add(id(chosen))
    try:
        yield chosen
    finally:
        with _LEASES:
            _BUSY.discard(id(chosen))
            _LEASES.notify_all()


def worker(implementation: str) -> Worker:
    """The command's (first) worker for ``implementation`` (a new one when it has none or it died)."""
    with _LEASES:
        live = _live(implementation)
        if not live:
            live.append(Worker(implementation))
        return live[0]


def has_worker(implementation: str) -> bool:
    """Whether ``implementation`` has a live worker in this command."""
    with _LEASES:
        return any(w.alive for w in _WORKERS.get(implementation, []))


def process_ids() -> dict[str, int]:
    """Each live worker's process id, by implementation (``keras@torch``; a second worker of it
    ``keras@torch 2``)."""
    with _LEASES:
        listed = {name: list(found) for name, found in _WORKERS.items()}
    return {name + (f" {n + 1}" if n else ""): w.process.pid for name, found in listed.items()
            for n, w in enumerate(found) if w.alive and w.process.pid is not None}


def resident_bytes() -> dict[str, int]:
    """Each implementation's largest live worker's resident memory (``/proc``; Linux, else empty)."""
    out: dict[str, int] = {}
    for name, pid in process_ids().items():
        with contextlib.suppress(OSError, ValueError, IndexError):
            held = int(open(f"/proc/{pid}/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            implementation = name.split(" ")[0]
            out[implementation] = max(out.get(implementation, 0), held)
    return out


def cpu_seconds(implementation: str) -> float | None:
    """The CPU time (``time.process_time`` in the worker) ``implementation``'s worker spent on its
    last call; None when it has made none."""
    return _LAST_CPU.get(implementation)


def stop(implementation: str) -> None:
    """End ``implementation``'s workers (its next call starts a fresh one)."""
    with _LEASES:
        current = _WORKERS.pop(implementation, [])
    for w in current:
        w.stop()


@atexit.register
def stop_all() -> None:
    """End every worker (at exit, on Ctrl-C, and between tests that want fresh ones), those still
    starting included."""
    with _STARTED_LOCK:
        started = list(_STARTED.values())
        _GENERATION[0] += 1
    for w in started:
        w.stop()
    with _LEASES:
        _WORKERS.clear()
        _LEASES.notify_all()


class RemoteAdapter:
    """The ``Adapter`` of an implementation that runs in a worker: the static facts come from the
    adapter itself (without importing its framework), every computation goes to the worker
    (``in_process_ok``: or to the adapter itself under ``inline()``)."""

    def __init__(self, local: Any, *, in_process_ok: bool = False) -> None:
        self._local = local
        self.name: str = local.name
        self.conventions: tuple[str, ...] = local.conventions
        self.optimizer_module: str = local.optimizer_module
        self.narrowing_rule: str | None = local.narrowing_rule
        self.subnormals: str | None = local.subnormals
        self.ties: str | None = local.ties
        self.in_process_ok = in_process_ok

    @property
    def in_process(self) -> bool:
        return self.in_process_ok and _INLINE["on"]

    def _call(self, method: str, *args: Any) -> Any:
        if self.in_process:
            return getattr(self._local, method)(*args)
        with lease(self.name) as leased:
            try:
                return leased.call(method, *args, timeout=_TIMEOUT["seconds"])
            finally:
                _LAST_CPU[self.name] = leased.cpu_seconds

    def available(self) -> str | None:
        reason = self._local.available()
        return None if reason is None else str(reason)

    def native_convention(self, spec: OptimizerSpec) -> str:
        return str(self._local.native_convention(spec))

    def run(self, plan: TrainingPlan) -> Trajectory:
        result: Trajectory = self._call("run", plan)
        return result

    def trace_step(self, plan: TrainingPlan, step: int) -> Params:
        result: Params = self._call("trace_step", plan, step)
        return result

    def forward(self, scenario: Scenario, params: Params, X: np.ndarray) -> list[np.ndarray]:
        result: list[np.ndarray] = self._call("forward", scenario, params, X)
        return result

    def loss(self, scenario: Scenario, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        result: np.ndarray = self._call("loss", scenario, y_true, y_pred)
        return result

    def gradients(self, scenario: Scenario, params: Params, X: np.ndarray,
                  y: np.ndarray) -> tuple[np.ndarray, Params]:
        result: tuple[np.ndarray, Params] = self._call("gradients", scenario, params, X, y)
        return result

    def fit_baseline_seconds(self, plan: TrainingPlan) -> float | None:
        result: float | None = self._call("fit_baseline_seconds", plan)
        return result
