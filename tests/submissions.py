"""A submitted ``backward(params, X, y)`` called in its own process and read as gradients: the
gradient audit's call (``BackwardAudit``: ``call_submission`` then ``read_returned``) on the
arrays a test chooses, for the tests of the sandbox, notebooks and the processes' lifetime."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.answers.returned import Returned, read_returned
from harness.answers.sandbox import TIMEOUT, Cell, SubmissionAdapter, call_submission


def run_submission(path: Path, function: str, params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray, *,
                   labels: dict[str, str], timeout: float = TIMEOUT, cells: list[Cell] | None = None,
                   submission_adapter: SubmissionAdapter | None = None, cpu_seconds: int | None = None) -> Returned:
    """``function(params, X, y)`` of the file ``path`` (``call_submission``), read as gradients
    (``read_returned``: ``labels`` maps each parameter's name to the labs' label, in order).

    Raises ``NoSuchFunction`` when the file imports but defines no such callable."""
    called = call_submission(path, function, [[{name: params[name] for name in labels}, X, y]], timeout=timeout,
                             cells=cells, submission_adapter=submission_adapter, cpu_seconds=cpu_seconds)
    if called.error:
        return Returned(error=called.error, notes=called.notes)
    returned = read_returned(called.values[0], labels)
    returned.notes = called.notes
    return returned
