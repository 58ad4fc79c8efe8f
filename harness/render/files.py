"""Every file the harness writes goes through here: atomically, and a failure is one line.

Files are written to a temporary name in the target folder (``.<name>.<random>.tmp``), then
renamed over the old ones, so a failure while writing leaves the previous files in place,
and an interrupted run leaves only temporary files, which the next write into the folder
removes. A set of files that belong together (a report: its markdown and its plots) is
replaced as a set: the plots have content-addressed names, so renaming a new one never
changes a file the old markdown shows; the markdown is renamed last (the commit), and only
then are the set's files it no longer uses removed. A reader therefore sees the complete
old set or the complete new one. A folder or file that cannot be written is ``BadInput``
naming the path (exit 2), never a traceback. JSON has no nan/inf: they are written as the
strings ``"nan"``, ``"inf"``, ``"-inf"``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.errors import BadInput

_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")  # mkstemp(prefix=".<name>.", suffix=".tmp")


def content_name(stem: str, data: bytes, suffix: str) -> str:
    """``<stem>-<12 hex digits of the content's SHA-256><suffix>``: the same bytes, the same name."""
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:12]}{suffix}"


def write_files_atomic(folder: str | Path, files: dict[str, bytes], *, commit: str | None = None,
                       belongs: Callable[[str], bool] | None = None) -> None:
    """Write every file to a temporary name first, then rename them all, ``commit`` last; then
    remove the files of the folder that ``belongs`` to this set but are not in ``files``."""
    folder = Path(folder)
    for name in files:
        if name != Path(name).name or name in ("", ".", "..") or name.startswith("."):
            raise ValueError(f"a file name inside the output folder, not {name!r}")
    order = sorted(files, key=lambda name: name == commit)  # the commit file last
    temps: list[tuple[str, Path]] = []
    target = folder  # what a failure names: the folder, then the file being written
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path in folder.iterdir():  # an interrupted earlier write of one of these files
            temporary = _TEMPORARY.match(path.name)
            if temporary and (temporary["name"] in files or (belongs is not None and belongs(temporary["name"]))):
                path.unlink(missing_ok=True)
        for name in order:
            data, target = files[name], folder / name
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            temps.append((tmp, folder / name))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; reports are for everyone to read
        for tmp, final in temps:
            target = final
            os.replace(tmp, final)
        if belongs is not None:
            for path in folder.iterdir():
                if path.name not in files and belongs(path.name):
                    path.unlink(missing_ok=True)
    except OSError as exc:
        raise BadInput(target, "", "a path where the file can be written", exc.strerror or str(exc)) from None
    finally:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)


def check_output_folder(path: str | Path, *, option: str) -> None:
    """Refuse, before any work is done, a folder that is a file or cannot be created and written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BadInput(path, option, "a folder (or a path where one can be created)", "an existing file")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise BadInput(path, option, "a folder that can be created and written", f"{existing} is not writable")


def check_output_file(path: str | Path, *, option: str) -> None:
    """Refuse, before any work is done, a file path that is a folder or cannot be written (the
    message names the file, and its folder as the reason)."""
    path = Path(path)
    if path.is_dir():
        raise BadInput(path, option, "a file path", "an existing folder")
    try:
        check_output_folder(path.parent, option=option)
    except BadInput as exc:
        raise BadInput(path, option, "a file path in a folder that can be written",
                       f"its folder: {exc.received}") from None
    if path.parent.is_dir():  # a folder that says it is writable (root, /proc) but is not: try it
        try:
            fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as exc:
            raise BadInput(path, option, "a path where the file can be written",
                           exc.strerror or str(exc)) from None
        os.close(fd)
        os.unlink(probe)


def check_output_files(outputs: Sequence[tuple[str, str | Path | None]], *,
                       inputs: Sequence[str | Path] = ()) -> None:
    """Refuse, before any work is done, an output file (``(option, path)``; None: not asked for) that
    cannot be written (``check_output_file``), is one of the command's ``inputs`` or is the file of
    another output: no output overwrites an input or another output (symlinks and hard links
    included). The one check of every command's output files."""
    given: list[tuple[str, Path]] = []
    for option, path in outputs:
        if path is None or path == "":
            continue
        check_output_file(path, option=option)
        for source in inputs:
            if same_file(path, source):
                raise BadInput(path, option, "a path that is not one of the command's inputs",
                               display_path(Path(source)))
        for other_option, other in given:
            if same_file(path, other):
                raise BadInput(path, option, f"a file other than {other_option}'s", "the same file")
        given.append((option, Path(path)))


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file: ``os.path.samefile`` where both exist, else their resolved
    paths (a file not written yet) are equal."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return os.path.realpath(a) == os.path.realpath(b)  # realpath: a symlink loop raises nothing


def display_path(path: Path) -> str:
    """A path as generated files show it: relative to the working directory, else the file's
    name alone (a generated file never carries an absolute path of the machine that made it)."""
    try:
        return str(Path(os.path.realpath(path)).relative_to(Path.cwd().resolve()))
    except ValueError:
        return path.name


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


def machine_folders(*extra: str | Path) -> list[tuple[str, str]]:
    """Absolute folders of this machine that generated text may name (the working directory, the
    home folder, the Python installation, the temporary folder, and ``extra``), each with what
    replaces it: longest first, so the most specific folder wins."""
    roots = {str(Path.cwd().resolve()): ".", str(Path.home()): "~", sys.prefix: "(python)",
             sys.base_prefix: "(python)", tempfile.gettempdir(): "(tmp)"}
    for folder in extra:
        path = Path(folder)
        if path.is_absolute():
            roots.setdefault(str(path.resolve()), ".")
            roots.setdefault(str(path), ".")
    return sorted(((r, s) for r, s in roots.items() if len(Path(r).parts) > 1), key=lambda x: -len(x[0]))


def without_machine_paths(text: str, *folders: str | Path) -> str:
    """``text`` with every absolute folder of ``machine_folders`` replaced (``./...``, ``~/...``,
    ``(python)/...``, ``(tmp)/...``): what a generated file writes instead of a path of this machine."""
    for root, stand_in in machine_folders(*folders):
        text = text.replace(root, stand_in)
    return text
