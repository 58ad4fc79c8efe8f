"""The resident memory of this process and its workers while a command works (``nn-parity bench
--catalogue``), read from ``/proc`` (Linux; elsewhere every figure is None).

``PeakResident`` samples, every ``every`` seconds in a thread of its own, the sum of the resident
memory of this process and of every live worker (``harness.run.adapters.workers``), keeping the
largest sum; and each process's own peak as the kernel counts it (``VmHWM``), keeping the largest.
A sum between two samples can be missed; a process's own peak only if it ends between two samples
(``sample()`` before ending workers reads theirs).
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
from types import TracebackType

from harness.run.adapters.workers import process_ids

EVERY = 0.1  # seconds between two samples


def status_bytes(pid: int, field: str) -> int | None:
    """``field`` (``VmRSS``, ``VmHWM``) of ``/proc/<pid>/status`` in bytes; None when unreadable."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024  # kB
    return None


class PeakResident:
    """``with PeakResident() as memory: ...``, then ``memory.peak_total`` and ``memory.largest_process``
    (bytes; None off Linux)."""

    def __init__(self, *, every: float = EVERY) -> None:
        self.every = every
        self.peak_total: int | None = None
        self.largest_process: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="nn-parity-resident", daemon=True)

    def sample(self) -> None:
        if not sys.platform.startswith("linux"):
            return
        total = 0
        for pid in [os.getpid(), *process_ids().values()]:
            resident, peak = status_bytes(pid, "VmRSS"), status_bytes(pid, "VmHWM")
            total += resident or 0
            if peak is not None:
                self.largest_process = max(self.largest_process or 0, peak)
        self.peak_total = max(self.peak_total or 0, total)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def __enter__(self) -> "PeakResident":
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
