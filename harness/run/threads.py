"""How many threads torch and TensorFlow compute with: ``$NN_PARITY_THREADS``, 1 when unset.

One thread by default: these models are tiny, and the runs of the other implementations compute at
the same time (measured: sigmoid-exponential 29 s with 2 torch threads on a busy 2-core machine,
4.9 s with 1; 2.6 s either way when idle). The variable exists so that a verdict can be shown not
to depend on it (``make test-kernels`` runs the kernel-sensitive tests on 1 and 2 threads); the run
cache's key and the reports' stamp include it (``harness.run.environment.NUMERIC_EXACT``). NumPy's
BLAS keeps its own setting (``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``).
"""
from __future__ import annotations

import os

from harness.errors import BadInput

VARIABLE = "NN_PARITY_THREADS"
MAX_THREADS = 1024


def framework_threads() -> int:
    """``$NN_PARITY_THREADS`` as a number of threads (1 when unset); BadInput when it is not one."""
    text = os.environ.get(VARIABLE, "").strip()
    if not text:
        return 1
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_THREADS):
        raise BadInput("environment", VARIABLE, f"a whole number of threads from 1 to {MAX_THREADS}", text)
    return int(text)
