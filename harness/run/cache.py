"""The run cache: finished runs kept as data in a folder, one file per key, served instead of made again.

A run's key (``harness.run.cache_key``) is the SHA-256 of everything it depends on (the
implementation, the plan, the harness's code, the environment): an entry made elsewhere is never
served; only finished, ``ok`` runs are stored. The report's figures are kept here too
(``harness.render.plots.drawn``), keyed by the same stamp and every number they show.

Entries are data, never pickles: one ``<key>.npz`` file each (a zip archive written whole, then
renamed into place), holding ``meta.json`` (the value's structure, its scalars and strings, and
what the entry was made from: the implementation, the plan's description, the environment) and
one ``.npy`` member per array (``harness.run.cache_encoding``; read with ``allow_pickle=False``).
A file that is not a regular file is never opened; one that is truncated, corrupt, of another
format or for another key is not an entry: it is ignored (and replaced when the run is made
again), never served.

``RunCache.verify``: the live spot check (``harness.run.spot_check``). Before a cached run is
used, its first steps are made again and compared bitwise with the cached ones; a mismatch evicts
the entry, is said on stderr, and the run is made again.

The commands use the folder ``.nn-parity-cache/`` in the working directory (or ``$NN_PARITY_CACHE``;
``--cache DIR`` elsewhere, ``--no-cache`` to bypass it, ``--verify-cache`` for the spot check,
``nn-parity cache info|verify|clear``); it can be deleted at any time. Library calls (the pytest
plugin, ``run_scenario`` from Python) use no cache unless ``use_cache`` sets one; runs made under
``workers.inline()`` (a test that monkeypatched a framework) never read or write it.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import stat
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from harness.errors import BadInput
from harness.run import environment
from harness.run.cache_encoding import Members, decode_value, encode_value
from harness.run.cache_key import FORMAT, describe_plan, key, plan_from
from harness.run.plan import TrainingPlan

FOLDER = ".nn-parity-cache"  # the commands' default, in the working directory
VARIABLE = "NN_PARITY_CACHE"  # ... unless this environment variable names another
META = "meta.json"
ENTRY_NAME = re.compile(r"[0-9a-f]{64}\.npz")
OLD_ENTRY_NAME = re.compile(r"[0-9a-f]{64}\.pickle")  # format 1 (pickles): never read, removed by `clear`
TEMP_NAME = re.compile(r"\.[^/]*\.tmp")
MAX_ENTRY_BYTES = 1 << 31  # a file larger than this is not one of ours


def default_folder() -> tuple[str, str]:
    """The commands' cache folder and where it was named (``$NN_PARITY_CACHE`` or the default)."""
    if VARIABLE in os.environ:
        return os.environ[VARIABLE], f"${VARIABLE}"
    return FOLDER, "--cache"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "a file"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a folder"


def open_folder(folder: str, where: str, *, verify: bool = False) -> RunCache:
    """The cache in ``folder`` (named by ``where``: ``--cache`` or ``$NN_PARITY_CACHE``), created if
    missing. BadInput (one line, exit 2) for an empty name, a file, a device, a folder that cannot
    be created or read; a folder that can be read but not written is used read-only (its runs are
    served, new ones not kept), said on stderr."""
    expected = "a folder to keep runs in (or --no-cache)"
    if folder == "":
        raise BadInput(where, "", expected, "an empty name")
    path = Path(folder)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(f"{where} {folder}", "", "a folder that can be created", exc.strerror or str(exc)) from None
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise BadInput(f"{where} {folder}", "", expected, exc.strerror or str(exc)) from None
    if not stat.S_ISDIR(mode):
        raise BadInput(f"{where} {folder}", "", expected, _kind(mode))
    if not os.access(path, os.R_OK | os.X_OK):
        raise BadInput(f"{where} {folder}", "", "a folder that can be read", "one without read permission")
    writable = os.access(path, os.W_OK)
    if not writable:
        _warn(f"the cache folder {folder} ({where}) cannot be written: its runs are used, new runs are not kept")
    return RunCache(path, verify=verify, writable=writable)


@dataclass
class Entry:
    """One entry as read: its value and what it was made from (``about``; ``plan``: None for a figure)."""

    key: str
    value: Any
    about: dict[str, Any]
    plan: TrainingPlan | None
    extra: tuple[Any, ...] = ()

    @property
    def kind(self) -> str:
        """``run``, ``trace_step`` or ``figure``."""
        return str(self.about.get("method", "figure"))

    def rebuilt_key(self) -> str | None:
        """The key this entry's run has in this process (None for a figure): the entry's own key
        when it was made here (the same code and environment) and its plan was rebuilt whole."""
        if self.plan is None:
            return None
        return key(str(self.about.get("implementation")), self.kind, self.plan, *self.extra)


def _open_regular(path: Path) -> bytes | None:
    """The bytes of ``path`` if it is a regular file of a sane size; None otherwise (a directory, a
    FIFO, a device, a link is never opened; nothing blocks)."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ENTRY_BYTES:
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ENTRY_BYTES:
            return None
        return f.read()


def _parse(data: bytes, k: str) -> Entry:
    """An entry's bytes as an ``Entry``; ValueError (or a zip/npy error) if they are not one."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        if any(i.compress_type != zipfile.ZIP_STORED for i in infos):  # ours are stored: no unpacking bomb
            raise ValueError("compressed members")
        meta = json.loads(archive.read(META))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("key") != k:
            raise ValueError("another format or another key")
        names = {i.filename for i in infos} - {META}

        loaded: dict[str, np.ndarray] = {}

        def array(name: str) -> np.ndarray:
            """Member ``name`` (read once: an array kept once is one object again)."""
            if name not in loaded:
                member = f"{name}.npy"
                if member not in names:
                    raise ValueError(f"no member {member}")
                with archive.open(member) as f:
                    loaded[name] = np.lib.format.read_array(f, allow_pickle=False)
            return loaded[name]

        value = decode_value(meta["value"], array)
        about = meta.get("about") or {}
        plan_fields = about.get("plan")
        plan, extra = None, ()
        if plan_fields is not None:
            plan_arrays = {str(n): array(f"plan {n}") for n in about.get("plan_arrays", [])}
            plan = plan_from(plan_fields, plan_arrays, name=str(about.get("scenario", "cached")))
            extra = tuple(decode_value(about.get("extra"), array))
    return Entry(key=k, value=value, about=about, plan=plan, extra=extra)


def read_about(path: Path) -> dict[str, Any] | None:
    """What an entry file says it was made from (its ``meta.json`` without the value), or None when
    the file is not an entry (``nn-parity cache info``)."""
    data = _open_regular(path)
    if data is None:
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            meta = json.loads(archive.read(META))
    except Exception:
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("key") != path.stem:
        return None
    about = meta.get("about")
    return about if isinstance(about, dict) else {}


def _warn(message: str) -> None:
    print(f"nn-parity: {message}", file=sys.stderr)


class RunCache:
    """Entries in ``folder``, one ``.npz`` file per key, written atomically. ``verify``: the commands'
    ``--verify-cache`` (``run_all`` spot-checks every cached run before using it); ``writable``
    False: entries are read, none written (a read-only folder)."""

    def __init__(self, folder: str | Path, *, verify: bool = False, writable: bool = True,
                 warn: Callable[[str], None] = _warn) -> None:
        self.folder = Path(folder)
        self.verify = verify
        self.writable = writable
        self.warn = warn

    def _path(self, k: str) -> Path:
        return self.folder / k[:2] / f"{k}.npz"

    def read(self, k: str) -> Entry | None:
        """The entry of key ``k``; None when there is none, or the file there is not one (a file
        that is no entry is removed when it is a regular file, so the run made again replaces it)."""
        path = self._path(k)
        data = _open_regular(path)
        if data is None:
            return None
        try:
            return _parse(data, k)
        except Exception:  # truncated, corrupt, foreign: not an entry; forget it
            self.evict(k)
            return None

    def get(self, k: str) -> Any | None:
        entry = self.read(k)
        return None if entry is None else entry.value

    def evict(self, k: str) -> None:
        path = self._path(k)
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.lstat(path).st_mode):
                path.unlink()

    def put(self, k: str, value: Any, *, made: tuple[str, str, TrainingPlan, tuple[Any, ...]] | None = None) -> None:
        """Keep ``value`` under ``k``; ``made``: (implementation, method, plan, extra) it was made from
        (kept so that ``nn-parity cache verify`` can make it again). A folder that cannot be written
        keeps nothing; the command goes on."""
        if not self.writable:
            return
        members = Members()
        about: dict[str, Any] = {"environment": environment.environment_line(),
                                 "fingerprint": environment.fingerprint()[:16]}
        if made is not None:
            implementation, method, plan, extra = made
            fields, plan_arrays = describe_plan(plan)
            about.update(implementation=implementation, method=method, extra=encode_value(list(extra), members),
                         scenario=plan.scenario.name, plan=fields, plan_arrays=list(plan_arrays))
        meta = {"format": FORMAT, "key": k, "value": encode_value(value, members), "about": about}
        arrays = {**members.arrays, **({} if made is None else {f"plan {n}": a for n, a in plan_arrays.items()})}
        path = self._path(k)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        except OSError:
            return
        try:
            with os.fdopen(handle, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as archive:
                archive.writestr(META, json.dumps(meta, allow_nan=True))
                for name, array in arrays.items():
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
            os.replace(temp, path)
        except OSError:  # the disk is full, the path is a folder...: nothing kept
            with contextlib.suppress(OSError):
                os.unlink(temp)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def files(self) -> Iterator[tuple[Path, str]]:
        """Every file this cache writes that is in the folder: (path, kind), kind ``entry``,
        ``old`` (a format-1 pickle, never read) or ``temp`` (an interrupted write). Nothing else."""
        try:
            subfolders = sorted(p for p in self.folder.iterdir() if re.fullmatch(r"[0-9a-f]{2}", p.name))
        except OSError:
            return
        for sub in subfolders:
            try:
                if not stat.S_ISDIR(os.lstat(sub).st_mode):
                    continue
                paths = sorted(sub.iterdir())
            except OSError:
                continue
            for path in paths:
                with contextlib.suppress(OSError):
                    if not stat.S_ISREG(os.lstat(path).st_mode):
                        continue
                    if ENTRY_NAME.fullmatch(path.name) and path.name.startswith(sub.name):
                        yield path, "entry"
                    elif OLD_ENTRY_NAME.fullmatch(path.name) and path.name.startswith(sub.name):
                        yield path, "old"
                    elif TEMP_NAME.fullmatch(path.name):
                        yield path, "temp"


_CURRENT: dict[str, RunCache | None] = {"cache": None}


def current() -> RunCache | None:
    return _CURRENT["cache"]


@contextlib.contextmanager
def use_cache(folder: str | Path | RunCache | None, *, verify: bool = False) -> Iterator[RunCache | None]:
    """Runs made while the context lasts read and write the cache in ``folder`` (None: none)."""
    previous = _CURRENT["cache"]
    _CURRENT["cache"] = folder if isinstance(folder, RunCache) or folder is None else RunCache(folder, verify=verify)
    try:
        yield _CURRENT["cache"]
    finally:
        _CURRENT["cache"] = previous
