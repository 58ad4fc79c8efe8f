"""``nn-parity run NAME|FILE``: run a scenario (each variant of a file), print the agreement table, the
final parameters or outputs, the verdict and the diagnosis of every pair that does not agree or drifts."""
from __future__ import annotations

import argparse
from typing import Sequence

from harness.commands.args import FRAMEWORKS_HELP, add_execution_options, dtypes_arg, frameworks_arg, memory_size
from harness.commands.cli import COMMANDS
from harness.errors import EXIT_AGREE, EXIT_DISAGREE
from harness.judge.diagnosis import Diagnosis
from harness.judge.result import ScenarioResult
from harness.pipeline import diagnose, run_scenario
from harness.render.files import check_output_files, write_text_atomic
from harness.render.frames import comparisons_csv
from harness.render.results_json import write_json_many, write_result_json
from harness.render.terminal_report import terminal_report
from harness.run import progress as overall_progress
from harness.run.adapters import FRAMEWORKS
from harness.run.progress import Progress
from harness.spec.catalogue import resolve_all
from harness.spec.scenario import DTYPES, Scenario


def register(subparsers) -> None:
    p = subparsers.add_parser("run", help=COMMANDS["run"])
    p.add_argument("scenario", help="a catalogue name (see `nn-parity list`) or a scenario .toml file "
                                    "(a file with [[variants]] runs each variant)")
    p.add_argument("--frameworks", type=frameworks_arg, default=FRAMEWORKS,
                   help=FRAMEWORKS_HELP)
    p.add_argument("--dtype", type=dtypes_arg, default=DTYPES, dest="dtypes",
                   help="float64, float32 or both (default: both)")
    p.add_argument("--json", metavar="PATH", help="also write the runs and comparisons as JSON")
    p.add_argument("--csv", metavar="PATH", help="also write the comparisons as CSV, one row per pair and dtype")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--max-memory", type=memory_size, metavar="SIZE",
                   help="refuse a scenario whose runs would need more memory (e.g. 8G; default: the machine's)")
    add_execution_options(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    scenarios = resolve_all(args.scenario)  # every variant is validated before anything runs
    check_output_files([("--json", args.json), ("--csv", args.csv)], inputs=[s.path for s in scenarios])
    progress = None if args.quiet else overall_progress.say
    with overall_progress.overall(overall_progress.RUNS, enabled=not args.quiet):
        results = [run_one(s, args, progress) for s in scenarios]
    if args.json:
        if len(results) == 1:
            write_result_json(results[0][0], args.json, diagnoses=results[0][1])
        else:
            write_json_many(results, args.json)
    if args.csv:
        write_text_atomic(args.csv, comparisons_csv([r for r, _ in results]))
    return EXIT_AGREE if all(r.ok for r, _ in results) else EXIT_DISAGREE


def run_one(scenario: Scenario, args: argparse.Namespace,
            progress: Progress | None) -> tuple[ScenarioResult, Sequence[Diagnosis]]:
    """Run, print and diagnose one scenario (the diagnosis is the report's, word for word)."""
    result = run_scenario(scenario, frameworks=args.frameworks, dtypes=args.dtypes, progress=progress,
                          max_bytes=args.max_memory)
    diagnoses = diagnose(result, progress=progress)
    print(terminal_report(result, diagnoses), end="")
    return result, diagnoses
