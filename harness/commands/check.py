"""``nn-parity check KEY.toml``: every answer of a key computed by the reference, Keras and torch, and judged."""
from __future__ import annotations

import argparse
import sys

from harness.answers.key_file import load_key
from harness.answers.output import exit_code, markdown_report, result_json, summary_table
from harness.answers.verdicts import check_entry
from harness.commands.args import FRAMEWORKS_HELP, add_execution_options, frameworks_arg
from harness.commands.cli import COMMANDS
from harness.render.files import check_output_files, write_json, write_text_atomic
from harness.run import progress as overall_progress
from harness.run.adapters import FRAMEWORKS


def register(subparsers) -> None:
    p = subparsers.add_parser("check", help=COMMANDS["check"])
    p.add_argument("key", help="an answer-key .toml file (see docs/answer-keys.md)")
    p.add_argument("--frameworks", type=frameworks_arg, default=FRAMEWORKS,
                   help=FRAMEWORKS_HELP)
    p.add_argument("--json", metavar="PATH", help="also write the verdicts as JSON")
    p.add_argument("--markdown", metavar="PATH", help="also write a markdown report")
    add_execution_options(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    key = load_key(args.key)
    check_output_files([("--markdown", args.markdown), ("--json", args.json)], inputs=[args.key])
    results = []
    with overall_progress.overall(overall_progress.ANSWERS):
        overall_progress.expect(len(key.entries), overall_progress.ANSWERS)
        for entry in key.entries:
            result = check_entry(entry, frameworks=args.frameworks)
            results.append(result)
            overall_progress.done(overall_progress.ANSWERS)
            overall_progress.say(f"{result.id}: {result.verdict}")
    print(f"# {key.title}\n")
    print(summary_table(results).to_markdown(index=False, disable_numparse=True), end="\n\n")
    for r in results:
        if r.verdict == "malformed":
            print(f"nn-parity: error: {r.message}", file=sys.stderr)
    if args.markdown:
        write_text_atomic(args.markdown, markdown_report(key, results, frameworks=args.frameworks) + "\n")
    if args.json:
        write_json(args.json, result_json(key, results, frameworks=args.frameworks), indent=2)
    return exit_code(results)
