"""The ``nn-parity`` command line. Each subcommand lives in ``harness/commands/<name>.py``
and exposes ``register(subparsers)``; the handler it sets returns the exit code.

Exit codes: 0 every compared pair agrees (or the command succeeded), 1 some pair
disagrees or a run crashed, 2 bad input (one line on stderr naming file and field),
130 interrupted (Ctrl-C; one line, nothing half-written), 143 terminated (SIGTERM: the same path
as Ctrl-C, one line).
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import os
import signal
import sys
import threading
from types import FrameType
from typing import Iterator, NoReturn

from harness.errors import EXIT_BAD_INPUT, BadInput
from harness.run import threads
from harness.run.adapters import use_executor, use_jobs
from harness.run.adapters.ray_executor import RayExecutor
from harness.run.adapters.ray_executor import missing as ray_missing
from harness.run.adapters.workers import run_timeout, start_limit
from harness.run.cache import RunCache, default_folder, open_folder, use_cache

# Each command, with its one-line help; a command's module is imported only when it runs (the
# others' imports, e.g. matplotlib for the reports, are not paid: `list` and `check` start fast).
COMMANDS = {
    "list": "list the catalogue's scenarios",
    "run": "run one scenario and compare the implementations",
    "report": "run the catalogue and write build/reports/<scenario>.md and the index",
    "bench": "time each adapter against the NumPy reference (float64), or the whole catalogue serially, in "
             "parallel and from the cache",
    "check": "check an answer key's printed answers in every implementation",
    "answers": "fill in an answer key's missing answers",
    "cache": "show, spot-check or clear the run cache (info, verify, clear)",
    "audit": "run hand-written gradient functions (each in its own process) and compare them with autograd and "
             "finite differences",
    "fuzz": "draw scenarios from the whole format, run them everywhere, shrink each unexplained finding to a file",
}
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI job's limit, ``kill``): handled as Ctrl-C is (the workers end, what was
    computed is kept, nothing is half-written), then exit 143."""


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` in the main thread while the context lasts."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread handles signals
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line (``nn-parity run: error: ...``), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported and its options defined (every command when
    None), the others are listed with their help."""
    parser = Parser(
        prog="nn-parity",
        description="Run lab scenarios in a NumPy reference, Keras and PyTorch and compare them step by step.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in COMMANDS.items():
        if command is None or name == command:
            importlib.import_module(f"harness.commands.{name}").register(subparsers)
        else:
            subparsers.add_parser(name, help=summary)
    return parser


@contextlib.contextmanager
def execution(args: argparse.Namespace) -> Iterator[None]:
    """The command's ``--jobs``, run cache and executor (``harness.commands.args.add_execution_options``);
    commands without them run with the defaults, no cache, on this machine's workers."""
    executor = None
    if getattr(args, "executor", "local") == "ray":
        reason = ray_missing()
        if reason is not None:
            raise BadInput("nn-parity", "--executor", "an installed executor", f"ray, but {reason}")
        executor = RayExecutor(address=args.address, num_cpus=getattr(args, "jobs", None))
    elif getattr(args, "address", None):
        raise BadInput("nn-parity", "--address", "--executor ray with it", args.address)
    cache = run_cache(args)
    with use_cache(cache), use_jobs(getattr(args, "jobs", None) or os.cpu_count() or 1), use_executor(executor), \
            run_timeout(getattr(args, "timeout", None) if hasattr(args, "executor") else None):
        yield


def run_cache(args: argparse.Namespace) -> RunCache | None:
    """The command's run cache: ``--cache DIR``, else ``$NN_PARITY_CACHE``, else ``.nn-parity-cache``
    (checked: ``harness.run.cache.open_folder``); None with ``--no-cache`` or for a command without
    the option."""
    if getattr(args, "no_cache", True):
        return None
    folder, where = (args.cache, "--cache") if args.cache is not None else default_folder()
    return open_folder(folder, where, verify=getattr(args, "verify_cache", False))


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block has run (a step that must not be cut, e.g. writing
    every report of a run), then take effect."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise Terminated() if received[0] == signal.SIGTERM else KeyboardInterrupt()


def program(argv: list[str] | None = None) -> NoReturn:
    """The ``nn-parity`` program (its console script and ``python -m harness``): ``main``, then the exit
    without the interpreter's finalization. A command interrupted (or ended by an error) leaves its daemon
    threads where they were, one perhaps inside a library's C++ (matplotlib's FreeType callback drawing a
    figure); Python 3.11's finalization stops such a thread when it next takes the GIL by unwinding its
    stack, which aborts the process in that C++ ("terminate called without an active exception", exit -6
    instead of 130: CI measured it) or crashes it. Everything else the exit does is done here: the
    threads that are not daemons are joined (after ``concurrent.futures`` has told its pools' threads to
    end) and the ``atexit`` handlers run (the workers end, Ray shuts down), then the output is flushed.
    An exception that escapes ``main`` (a harness bug) leaves the same way, with what the interpreter
    would give: its traceback (``sys.excepthook``) and exit 1; ``sys.exit``'s code as the interpreter
    reads it."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:  # whatever escapes, reported as the interpreter reports it
        sys.excepthook(*sys.exc_info())
        code = UNCAUGHT
    # the interpreter's own exit steps before it stops the threads (undocumented; Py_FinalizeEx calls them)
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


UNCAUGHT = 1  # the interpreter's exit code for an uncaught exception


def _exit_code(exc: SystemExit) -> int:
    """The exit code the interpreter gives ``sys.exit(code)``: 0 for None, an int as it is, anything
    else printed to stderr and 1."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return UNCAUGHT


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    first = next((a for a in argv if not a.startswith("-")), None)  # the command (None: --help alone)
    parser = build_parser(first if first in COMMANDS else None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for usage errors, 0 for --help
        return int(exc.code or 0)
    try:
        with sigterm_as_interrupt():
            threads.framework_threads()  # a bad $NN_PARITY_THREADS: one line and exit 2 before anything runs
            start_limit()  # and a bad $NN_PARITY_START_TIMEOUT
            with execution(args):
                return int(args.handler(args))
    except BadInput as exc:
        print(f"nn-parity: error: {exc.one_line()}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Terminated:  # SIGTERM: as Ctrl-C
        print("nn-parity: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:  # Ctrl-C: one line; the file writers have removed their temporary files
        print("nn-parity: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader (e.g. `| head`) went away: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
