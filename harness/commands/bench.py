"""``nn-parity bench NAME``: wall seconds of each adapter, as ratios to the NumPy reference
measured in the same run, and the reference's own ratio to a hand-written NumPy loop doing the same
maths (``harness.run.hand_loop``, where it is defined) (a benchmark, never a test)."""
from __future__ import annotations

import argparse
import os
import sys

import pandas as pd

from harness.commands.args import frameworks_arg, positive_int
from harness.commands.bench_catalogue import time_catalogue
from harness.commands.cli import COMMANDS
from harness.errors import BadInput
from harness.render.files import check_output_files, write_json
from harness.run.adapters import ALL_FRAMEWORKS, FRAMEWORKS, REFERENCE, adapter
from harness.run.bench import time_fit_baselines, time_runs
from harness.run.hand_loop import not_defined
from harness.spec.catalogue import catalogue_scenarios, resolve


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help=COMMANDS["bench"])
    p.add_argument("scenario", nargs="?", help="a catalogue name or a scenario .toml file")
    p.add_argument("--catalogue", action="store_true",
                   help="time the whole catalogue's reports (runs, control runs, traced steps; both dtypes): one run "
                        "at a time from a cold cache, with --jobs from a cold cache, and from the cache; the default "
                        "frameworks' catalogue, and --frameworks' after it (e.g. all: reports/backends)")
    p.add_argument("--frameworks", type=frameworks_arg, default=None, metavar="LIST",
                   help="the implementations timed for one scenario (default all: every one installed, Keras on "
                        "each backend too); with --catalogue, a second catalogue run with them (default: none)")
    p.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1, metavar="N",
                   help="with --catalogue: implementations computing at once in the parallel pass (default: cores)")
    p.add_argument("--repeat", type=positive_int, default=3,
                   help="timed runs per adapter; the best is kept (default 3)")
    p.add_argument("--baseline-fit", action="store_true",
                   help="also time the naive Keras model.fit(epochs=N) loop (slow: minutes)")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.catalogue == (args.scenario is not None):
        raise BadInput("nn-parity bench", "scenario", "a scenario name or file, or --catalogue (not both)",
                       args.scenario or "neither")
    scenario = None if args.catalogue else resolve(args.scenario)
    check_output_files([("--json", args.json)], inputs=[scenario.path] if scenario else [])
    if scenario is None:
        return catalogue(args)
    frameworks = tuple(f for f in args.frameworks or ALL_FRAMEWORKS if adapter(f).available() is None)
    load_before = _load_average()
    results, hand = time_runs(scenario, frameworks=frameworks, dtype="float64", repeat=args.repeat,
                              progress=lambda line: print(line, file=sys.stderr, flush=True))
    load = {"before": load_before, "after": _load_average()}
    fit_seconds = time_fit_baselines(scenario, frameworks=frameworks, dtype="float64") if args.baseline_fit else None
    print(pd.DataFrame(results).to_markdown(index=False, floatfmt=".3f"))
    print("\nratios to the reference timed in turn with each implementation (its best: reference_seconds, "
          "reference_cpu_seconds)")
    if load["before"] is not None:
        print(f"load average (1, 5, 15 min) before: {_text(load['before'])}; after: {_text(load['after'])}")
    hand_seconds = hand_ratio = None
    if hand is None:
        print(f"\nhand-written NumPy loop: not defined ({not_defined(scenario)})")
    else:
        hand_seconds, hand_ratio = hand["seconds"], hand["reference_seconds"] / hand["seconds"]
        print(f"\nhand-written NumPy loop: {hand_seconds:.3f} s; the {REFERENCE} reference takes {hand_ratio:.2f}x "
              "its time")
    for framework, seconds in (fit_seconds or {}).items():
        ours = next(r["seconds"] for r in results if r["framework"] == framework)
        print(f"\n{framework} model.fit baseline: {seconds:.1f} s = {seconds / ours:.1f}x our {framework} runner")
    if args.json:
        write_json(args.json, {"scenario": scenario.name, "results": results, "hand_loop_seconds": hand_seconds,
                               "reference_to_hand_loop": hand_ratio, "fit_baseline_seconds": fit_seconds,
                               "load_average": load})
    return 0


def _load_average() -> list[float] | None:
    """The machine's load average over 1, 5 and 15 minutes (None where the system has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _text(load: list[float] | None) -> str:
    return "unknown" if load is None else ", ".join(f"{x:.2f}" for x in load)


def catalogue_sets(frameworks: tuple[str, ...] | None) -> dict[str, tuple[str, ...]]:
    """The catalogues ``bench --catalogue`` times, by name: the default frameworks' (``default``),
    then ``frameworks``' when given and different (``backends`` for all of them, as ``make report``
    names its folder; else their names)."""
    out = {"default": FRAMEWORKS}
    if frameworks is not None and set(frameworks) != set(FRAMEWORKS):
        out["backends" if set(frameworks) == set(ALL_FRAMEWORKS) else ",".join(frameworks)] = frameworks
    return out


def catalogue(args: argparse.Namespace) -> int:
    figures = time_catalogue(catalogue_scenarios(), catalogues=catalogue_sets(args.frameworks), jobs=args.jobs,
                             progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"{figures['scenarios']} scenarios, both dtypes, every run, control run and traced step of their reports:")
    rows = [(name, c) for name, c in figures["catalogues"].items()] + [("both" if len(figures["catalogues"]) == 2
                                                                         else "all", figures)]
    for name, c in rows if len(figures["catalogues"]) > 1 else rows[:1]:
        frameworks = f" ({', '.join(c['frameworks'])})" if "frameworks" in c else ""
        print(f"{name}{frameworks}:")
        print(f"- one run at a time, cold cache: {c['serial_seconds']:.1f} s")
        print(f"- --jobs {figures['jobs']}, cold cache: {c['parallel_seconds']:.1f} s ({c['parallel_ratio']:.2f} x)")
        print(f"- from the cache: {c['cached_seconds']:.1f} s ({c['cached_ratio']:.3f} x)")
        print(f"- same verdicts in the three passes: {'yes' if c['same_results'] else 'NO'}")
        for found in c.get("differences", []):
            print(f"  - {found['scenario']}: " + "; ".join(f"{k}: {v}" for k, v in found.items() if k != "scenario"))
    peak, largest = figures["peak_resident_bytes"], figures["largest_process_bytes"]
    print("peak resident memory, this process and its workers: " + (
        "not measured (Linux only)" if peak is None else
        f"{peak / 2**30:.2f} GiB (sampled; the largest process {largest / 2**30:.2f} GiB)"))
    if args.json:
        write_json(args.json, figures)
    return 0 if figures["same_results"] else 1
