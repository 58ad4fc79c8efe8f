"""Example ``i`` of a campaign as a pure function of (seed, i, code): each example is drawn by a
hypothesis search of its own, seeded from ``(seed, i)`` alone (``derived_seed``), never as the
i-th value of one long stream. So a campaign's examples can be drawn, judged and counted in any
order or place (``--jobs``, Ray) and give the same report.

The draw is the search ``hypothesis.find`` makes with ``random=Random(derived_seed(seed, i))``, the
generate phase only, no database, stopped at the second value tried: hypothesis always tries the
simplest value of the strategy first (the same for every seed), then draws at random from its seed
(hypothesis' own documentation advises ``@given``/``find`` rather than ``.example()`` outside an
interactive session). It is ``find``'s own ``@given`` test seeded as ``find`` seeds it, with a body
that keeps the values instead of raising on the second: ``find`` treats the value it wants as a
failure and replays it to print it (pretty-printing the whole example), about 60% of the CPU of
a draw for nothing; the values are the same (tests/test_fuzz_engine.py). The shrink pass replays the
same search with ``find`` (``search_settings``) to reach example ``i`` again.

Hypothesis mixes constants of the *local* modules loaded in the process into its draws (one value
in twenty of a bounded integer, from the pool of every literal in them). So that the pool is a
function of the code and not of what the process happened to import before (a test, ``--html``,
the Ray driver), every module of ``harness`` and ``reference`` is imported before the first draw
(``pin_constant_pool``); test files are never in the pool (hypothesis leaves them out).
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import pkgutil
from pathlib import Path
from random import Random
from typing import Iterator, TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as seeded
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.errors import NoSuchExample
from hypothesis.strategies import SearchStrategy

import harness
import reference

T = TypeVar("T")
TRIES = 2  # the simplest value, then the seed's own draw


def derived_seed(seed: int, i: int) -> int:
    """Example ``i``'s seed: 64 bits of SHA-256 of the campaign's seed and ``i``."""
    digest = hashlib.sha256(f"nn-parity-fuzz:{seed}:{i}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def search_settings(**overrides: object) -> settings:
    base = {"max_examples": TRIES, "phases": [Phase.generate], "database": None, "deadline": None,
            "suppress_health_check": list(HealthCheck), "derandomize": False}
    return settings(**{**base, **overrides})  # type: ignore[arg-type]


def draw(strategy: SearchStrategy[T], seed: int, i: int) -> T:
    """Example ``i`` of the campaign seeded ``seed`` (module docstring)."""
    pin_constant_pool()
    tried: list[T] = []

    @search_settings()
    @given(strategy)
    def keep(value: T) -> None:
        tried.append(value)

    # find's seeding: the test seeded with 64 bits of the Random it is given
    seeded(Random(derived_seed(seed, i)).getrandbits(64))(keep)()
    if len(tried) < TRIES:  # find's answer when the strategy has fewer values than it tried
        raise NoSuchExample(f"the second value of {strategy!r}")
    return tried[TRIES - 1]


_PINNED = {"done": False}


def pin_constant_pool() -> None:
    """Import every module of the project's two packages, once (module docstring)."""
    if _PINNED["done"]:
        return
    for package in (harness, reference):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)
    _PINNED["done"] = True


@contextlib.contextmanager
def hypothesis_home(folder: Path) -> Iterator[None]:
    """Hypothesis' own files (its cache of the constants it read) go under ``folder`` while the
    context lasts, not into the working directory's ``.hypothesis``."""
    set_hypothesis_home_dir(folder)
    try:
        yield
    finally:
        set_hypothesis_home_dir(None)
