"""What an audited function returned, read as gradients (or parameters), or why it returned nothing.

``read_returned`` reads a return value the same way whether it came back from the submission's
process (``harness.answers.sandbox``) or from a callable run in this process
(``harness.answers.audit.audit_gradients``): a dict keyed by reference names or the labs' labels,
or a tuple/list in parameter order. ``crash_reason`` says on one line how a call ended without a
value. Imported by the child (``harness.answers.sandbox_child``): the standard library and NumPy only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.answers.value_transfer import Opaque, last_line, type_name


@dataclass
class Returned:
    """What the audited function returned, by reference parameter name (``layers.<i>.kernel``)."""
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # read as float64
    unreadable: dict[str, str] = field(default_factory=dict)  # name -> why its value is not a numeric array
    error: str = ""  # why there are no gradients at all: the function (or its process) crashed
    notes: list[str] = field(default_factory=list)  # imports of a notebook that failed, and the run went on


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
            out.unreadable[name] = f"not a numeric array ({last_line(str(exc))})"
    return out


def crash_reason(exc: BaseException, where: str) -> str:
    """``where`` (e.g. "the function") raised ``exc``: its type and the last line of its message."""
    if isinstance(exc, SystemExit):
        return f"{where} called sys.exit({exc.code!r})"
    message = last_line(str(exc))
    return f"{where} raised {type(exc).__name__}" + (f": {message}" if message else "")
