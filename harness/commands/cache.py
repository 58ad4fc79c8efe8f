"""``nn-parity cache info|verify|clear [--cache DIR]``: the run cache (``harness.run.cache``).

``info``: the folder, its entries (runs, traced steps, figures, audits' gradients), their size and the
environments that made them. ``verify``: the live spot check (``harness.run.spot_check``) of every run
and traced step made here (with this code, in this environment: other entries can never be served here
and are left alone), and every audit's gradients made again whole (``harness.answers.audit``); an entry
that no longer reproduces is evicted and said; exit 1 if any. ``clear``:
removes the files the cache writes (entries, format-1 pickles, interrupted writes), nothing else.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
from collections import Counter
from pathlib import Path

from harness.commands.args import add_cache_option
from harness.commands.cli import COMMANDS
from harness.errors import EXIT_AGREE, EXIT_DISAGREE
from harness.run import environment
from harness.run.adapters import adapter, run_all, trace_framework
from harness.run.cache import Entry, RunCache, default_folder, open_folder, read_about
from harness.run.spot_check import check_plan, run_difference, trace_difference
from harness.run.trajectory import Trajectory

ACTIONS = ("info", "verify", "clear")


def register(subparsers) -> None:
    p = subparsers.add_parser("cache", help=COMMANDS["cache"], description=__doc__.split("\n\n")[1])
    p.add_argument("action", choices=ACTIONS)
    add_cache_option(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    folder, where = (args.cache, "--cache") if args.cache is not None else default_folder()
    try:
        os.stat(folder)
    except FileNotFoundError:
        if folder:  # nothing to show, verify or clear (and nothing made)
            print(f"folder: {folder} (none: no entries)")
            return EXIT_AGREE
    except OSError:
        pass  # open_folder says what is wrong
    cache = open_folder(folder, where)
    return {"info": info, "verify": verify, "clear": clear}[args.action](cache)


def _megabytes(paths: list[Path]) -> str:
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):
            total += path.lstat().st_size
    return f"{total / 1e6:.1f} MB"


def info(cache: RunCache) -> int:
    files = list(cache.files())
    entries = [p for p, kind in files if kind == "entry"]
    kinds: Counter[str] = Counter()
    environments: Counter[tuple[str, str]] = Counter()
    unreadable = 0
    for path in entries:
        about = read_about(path)
        if about is None:
            unreadable += 1
            continue
        kinds[str(about.get("method", "figure"))] += 1
        environments[(str(about.get("fingerprint", "?")), str(about.get("environment", "?")))] += 1
    print(f"folder: {cache.folder}")
    gradients = f", {kinds['gradients']} audits' gradients" if kinds["gradients"] else ""
    print(f"entries: {len(entries)} ({kinds['run']} runs, {kinds['trace_step']} traced steps, {kinds['figure']} "
          f"figures{gradients}{f', {unreadable} unreadable' if unreadable else ''}), {_megabytes(entries)}")
    others = Counter(kind for _, kind in files if kind != "entry")
    if others:
        size = _megabytes([p for p, kind in files if kind != "entry"])
        print(f"also: {others['old']} entries of the old format (pickles, never read), {others['temp']} interrupted "
              f"writes ({size}; `nn-parity cache clear` removes them)")
    here = environment.fingerprint()[:16]
    print(f"environments: {len(environments)}")
    for (fingerprint, text), count in environments.most_common():
        print(f"- {fingerprint}{' (this one)' if fingerprint == here else ''}: {count} entries; {text}")
    return EXIT_AGREE


def verify(cache: RunCache) -> int:
    """The spot check of every entry made here; the others are counted, not touched."""
    runs: list[Entry] = []
    traces: list[Entry] = []
    gradients: list[Entry] = []  # an audit's framework gradients (``harness.answers.audit``)
    elsewhere = unreadable = figures = 0
    for path, kind in cache.files():
        if kind != "entry":
            continue
        entry = cache.read(path.stem)
        if entry is None:
            unreadable += 1
        elif entry.plan is None:
            figures += 1
        elif entry.rebuilt_key() != entry.key:
            elsewhere += 1
        elif entry.kind == "run" and isinstance(entry.value, Trajectory):
            runs.append(entry)
        elif entry.kind == "trace_step" and isinstance(entry.value, dict):
            traces.append(entry)
        elif entry.kind == "gradients" and isinstance(entry.value, dict):
            gradients.append(entry)
        else:
            unreadable += 1
    failed = 0

    def evict(entry: Entry, what: str, difference: str) -> None:
        nonlocal failed
        failed += 1
        cache.evict(entry.key)
        print(f"cached {what} of {entry.about.get('implementation')} ({entry.about.get('scenario')}, "
              f"{entry.plan.dtype if entry.plan else '?'}) no longer reproduces: {difference}; evicted")

    checks = run_all([(str(e.about["implementation"]), check_plan(e.plan)) for e in runs if e.plan is not None])
    for entry, check in zip(runs, checks):
        difference = run_difference(entry.value, check)
        if difference is not None:
            evict(entry, "run", difference)
    for entry in traces:
        assert entry.plan is not None
        step = int(entry.extra[0])
        difference = trace_difference(entry.value, trace_framework(str(entry.about["implementation"]), entry.plan,
                                                                     step))
        if difference is not None:
            evict(entry, f"trace (step {step})", difference)
    for entry in gradients:
        plan = entry.plan
        assert plan is not None
        made = adapter(str(entry.about["implementation"])).gradients(plan.scenario, plan.initial_params, plan.X,
                                                                    plan.y)[1]
        difference = trace_difference(entry.value, made)
        if difference is not None:
            evict(entry, "audit's gradients", difference.replace("stage", "parameter"))
    print(f"verified {len(runs)} runs and {len(traces)} traced steps"
          + (f" and {len(gradients)} audits' gradients" if gradients else "") + " made here: "
          + ("all reproduce" if not failed else f"{failed} no longer reproduce (evicted)")
          + f"; left alone: {elsewhere} made with other code or in another environment, {figures} figures"
          + (f", {unreadable} unreadable" if unreadable else ""))
    return EXIT_DISAGREE if failed else EXIT_AGREE


def clear(cache: RunCache) -> int:
    files = list(cache.files())
    size = _megabytes([p for p, _ in files])
    removed = 0
    for path, _ in files:
        with contextlib.suppress(OSError):
            path.unlink()
            removed += 1
    with contextlib.suppress(OSError):
        for sub in cache.folder.iterdir():
            if re.fullmatch(r"[0-9a-f]{2}", sub.name) and sub.is_dir() and not sub.is_symlink():
                with contextlib.suppress(OSError):
                    sub.rmdir()  # only when empty
    print(f"removed {removed} files ({size}) from {cache.folder}")
    return EXIT_AGREE
