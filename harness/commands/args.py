"""Argument types shared by the commands: each refuses a bad value with one line (exit 2)."""
from __future__ import annotations

import argparse
import os
import re

from harness.run.adapters import ALIASES, ALL_FRAMEWORKS, FRAMEWORKS
from harness.run.budget import parse_size
from harness.run.cache import FOLDER, VARIABLE
from harness.spec.scenario import DTYPES

FRAMEWORKS_HELP = (f"comma-separated implementations of {','.join(ALL_FRAMEWORKS)}, or all (every one: Keras on "
                   f"JAX and torch too) (default: {','.join(FRAMEWORKS)}; numpy is the reference, which "
                   "confirms an optimizer convention or a dtype rule: without it, a known difference stays "
                   "unconfirmed)")


def frameworks_arg(text: str) -> tuple[str, ...]:
    """A comma-separated subset of the implementations (``keras@tensorflow`` is ``keras``), or
    ``all``: every implementation, Keras on each backend too (the default set is
    numpy,keras,torch)."""
    if text.strip() == "all":
        return ALL_FRAMEWORKS
    names = tuple(dict.fromkeys(ALIASES.get(n.strip(), n.strip()) for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in ALL_FRAMEWORKS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected all or a comma-separated subset of {','.join(ALL_FRAMEWORKS)} "
                                         f"(default {','.join(FRAMEWORKS)}); received {text!r}")
    return names


def dtypes_arg(text: str) -> tuple[str, ...]:
    if text == "both":
        return DTYPES
    if text in DTYPES:
        return (text,)
    raise argparse.ArgumentTypeError(f"expected float64, float32 or both; received {text!r}")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; received {text!r}")
    return value


MAX_SECONDS = 7 * 24 * 3600  # a week: far above any run, far below what the OS's timers take (threading.TIMEOUT_MAX)


def seconds(text: str) -> float:
    """A positive number of seconds, at most ``MAX_SECONDS`` (``--timeout``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds; received {text!r}") from None
    if not (0 < value <= MAX_SECONDS):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, at most {MAX_SECONDS} (a week); "
                                         f"received {text!r}")
    return value


_DURATION = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<unit>[smh]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}


def duration(text: str) -> float:
    """A positive duration with a unit, ``90s``, ``10m`` or ``1h`` (a bare number: seconds), at most
    ``MAX_SECONDS``, in seconds (``--time``)."""
    form = _DURATION.fullmatch(text.strip())
    value = float(form["number"]) * _UNIT_SECONDS[form["unit"]] if form else -1.0
    if not (0 < value <= MAX_SECONDS):
        raise argparse.ArgumentTypeError(f"expected a positive duration such as 90s, 10m or 1h, at most a week; "
                                         f"received {text!r}")
    return value


_HOST_PORT = re.compile(r"(?:ray://)?(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
                        r":(?P<port>[0-9]{1,5})")


def ray_address(text: str) -> str:
    """A Ray cluster's address as ``ray.init`` takes it: ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``
    (checked here, before Ray starts)."""
    form = _HOST_PORT.fullmatch(text)
    if text != "auto" and (form is None or not 1 <= int(form["port"]) <= 65535):
        raise argparse.ArgumentTypeError(f"expected auto, HOST:PORT or ray://HOST:PORT (a port 1-65535); "
                                         f"received {text!r}")
    return text


def memory_size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_execution_options(p: argparse.ArgumentParser) -> None:
    """``--jobs``, ``--cache``, ``--no-cache``, ``--verify-cache``, ``--timeout``, ``--executor``,
    ``--address``: how the runs are made (``cli.execution`` applies them)."""
    add_executor_options(p, cache=True)


def add_executor_options(p: argparse.ArgumentParser, *, cache: bool = False) -> None:
    """``--jobs``, ``--timeout``, ``--executor``, ``--address`` (and, with ``cache``, the run cache's
    options; without, the command keeps no run cache)."""
    p.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1, metavar="N",
                   help="implementations computing at the same time (default: the number of cores; 1: one run "
                        "at a time); the results are the same whatever N is")
    if cache:
        add_cache_option(p)
        p.add_argument("--no-cache", action="store_true", help="run everything again, and keep nothing")
        p.add_argument("--verify-cache", action="store_true",
                       help="before a cached run is used, make its first steps again and compare them bitwise; a "
                            "run that no longer reproduces is evicted, said, and made again")
    p.add_argument("--timeout", type=seconds, metavar="SECONDS",
                   help="a framework run that takes longer is killed and reported as crashed (default: no limit)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="where the runs are made: this machine's worker processes (default), or Ray tasks, one CPU "
                        "each (the optional extra: pip install 'nn-parity[ray]')")
    p.add_argument("--address", type=ray_address, metavar="ADDR",
                   help="with --executor ray: the Ray cluster (default: start a local one)")


def add_cache_option(p: argparse.ArgumentParser) -> None:
    """``--cache DIR`` (``cli.cache_folder`` checks it)."""
    p.add_argument("--cache", metavar="DIR", default=None,
                   help=f"where finished runs are kept, as data, keyed by everything they depend on (default "
                        f"${VARIABLE}, else {FOLDER}; delete it at any time)")
