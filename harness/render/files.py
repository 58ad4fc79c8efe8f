"""Every file the harness writes goes through here: atomically, and a failure is one line.

Files are written to a temporary name in the target folder, then renamed over the old
ones, so a failure while writing leaves the previous files in place. A folder or file
that cannot be written is ``BadInput`` naming the path (exit 2), never a traceback.
JSON has no nan/inf: they are written as the strings ``"nan"``, ``"inf"``, ``"-inf"``.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import BadInput


def write_files_atomic(folder: str | Path, files: dict[str, bytes]) -> None:
    """Write every file to a temporary name first, then rename them all."""
    folder = Path(folder)
    temps: list[tuple[str, Path]] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            temps.append((tmp, folder / name))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; reports are for everyone to read
        for tmp, final in temps:
            os.replace(tmp, final)
    except OSError as exc:
        target = temps[-1][1] if temps else folder
        raise BadInput(target, "", "a path where the file can be written", exc.strerror or str(exc)) from None
    finally:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    write_files_atomic(path.parent, {path.name: text.encode()})


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its string."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: str | Path, value: Any, *, indent: int = 1) -> None:
    write_text_atomic(path, json.dumps(json_safe(value), indent=indent) + "\n")
