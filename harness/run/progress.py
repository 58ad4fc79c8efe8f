"""A command's overall progress: the fraction done and an estimate of the time left, on stderr.

One mechanism for ``run``, ``report`` and ``check`` (``overall``): the work is counted in one unit
("runs": every run ``harness.run.adapters.run_all`` makes or finds in the cache, control runs
included as they become known; "answers" for an answer key), each piece as it finishes. On a
terminal the line is a ``tqdm`` bar, redrawn in place (``12/40 runs (30%), 00:41 elapsed, about
01:35 left``); otherwise (a log, a pipe, CI) a plain line at most every ``every`` seconds. Never
on stdout, never in a file. The command's own progress lines go through ``say`` so that they do
not garble the bar. Outside ``overall`` (the Python API, tests) ``expect`` and ``done`` do nothing.
"""
from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import time
from typing import IO, Callable, Iterator

from tqdm import tqdm  # type: ignore[import-untyped]  # no stubs; pinned in constraints.txt

BAR_FORMAT = "{n_fmt}/{total_fmt} {unit} ({percentage:.0f}%), {elapsed} elapsed, about {remaining} left"
EVERY = 30.0  # seconds between two lines when stderr is not a terminal
RUNS, ANSWERS = "runs", "answers"  # the units
Progress = Callable[[str], None]  # what receives a command's progress lines (a run made, a step traced)


class Overall:
    """Counts pieces of work in one unit and shows how far along the command is."""

    def __init__(self, unit: str, *, stream: IO[str], every: float) -> None:
        self.unit, self.stream, self.every = unit, stream, every
        self.total = self.finished = 0
        self.start = time.monotonic()
        self._last_line = self.start
        self._lock = threading.Lock()  # runs finish in several feeder threads
        self._bar: tqdm | None = None
        self._terminal = bool(getattr(stream, "isatty", lambda: False)())

    def expect(self, n: int) -> None:
        with self._lock:
            self.total += n
            if self._terminal:
                if self._bar is None:
                    size = shutil.get_terminal_size()  # 80 x 24 for a terminal that says 0 x 0 (tqdm would hide it)
                    self._bar = tqdm(total=self.total, unit=self.unit, file=self.stream, bar_format=BAR_FORMAT,
                                     ncols=size.columns, nrows=size.lines, leave=False)
                else:
                    self._bar.total = self.total
                    self._bar.refresh()

    def done(self, n: int = 1) -> None:
        with self._lock:
            self.finished += n
            if self._bar is not None:
                self._bar.update(n)
            elif not self._terminal and time.monotonic() - self._last_line >= self.every:
                self._last_line = time.monotonic()
                self.stream.write(f"nn-parity: {self.line()}\n")
                self.stream.flush()

    def line(self) -> str:
        """``12/40 runs (30%), 00:41 elapsed, about 01:35 left`` (the time left from the mean pace so far)."""
        elapsed = time.monotonic() - self.start
        fraction = self.finished / self.total if self.total else 0.0
        left = "?" if not self.finished else _clock(elapsed / self.finished * (self.total - self.finished))
        return (f"{self.finished}/{self.total} {self.unit} ({100 * fraction:.0f}%), {_clock(elapsed)} elapsed, "
                f"about {left} left")

    def say(self, text: str) -> None:
        """A line of the command's own (above the bar on a terminal)."""
        with self._lock:
            if self._bar is not None:
                self._bar.write(text, file=self.stream)
            else:
                self.stream.write(text + "\n")
                self.stream.flush()

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


_CURRENT: dict[str, Overall | None] = {"overall": None}


@contextlib.contextmanager
def overall(unit: str, *, enabled: bool = True, stream: IO[str] | None = None,
            every: float = EVERY) -> Iterator[Overall | None]:
    """The command's progress in ``unit`` while the context lasts (None when not ``enabled``)."""
    if not enabled:
        yield None
        return
    previous = _CURRENT["overall"]
    current = _CURRENT["overall"] = Overall(unit, stream=stream or sys.stderr, every=every)
    try:
        yield current
    finally:
        current.close()
        _CURRENT["overall"] = previous


def expect(n: int, unit: str) -> None:
    """``n`` more pieces of work in ``unit`` (ignored when the command counts another unit)."""
    current = _CURRENT["overall"]
    if current is not None and current.unit == unit:
        current.expect(n)


def done(unit: str, n: int = 1) -> None:
    """``n`` pieces of work in ``unit`` finished."""
    current = _CURRENT["overall"]
    if current is not None and current.unit == unit:
        current.done(n)


def say(text: str) -> None:
    """A progress line of the command's own on stderr (above the overall bar when there is one)."""
    current = _CURRENT["overall"]
    if current is not None:
        current.say(text)
    else:
        print(text, file=sys.stderr, flush=True)
