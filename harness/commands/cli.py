"""The ``nn-parity`` command line. Each subcommand lives in ``harness/commands/<name>.py``
and exposes ``register(subparsers)``; the handler it sets returns the exit code.

Exit codes: 0 every compared pair agrees (or the command succeeded), 1 some pair
disagrees or a run crashed, 2 bad input (one line on stderr naming file and field).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from harness.errors import EXIT_BAD_INPUT, BadInput

COMMANDS = ("list", "run", "report", "bench", "check", "answers", "audit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nn-parity",
        description="Run lab scenarios in a NumPy reference, Keras and PyTorch and compare them step by step.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"harness.commands.{name}").register(subparsers)
    return parser




def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for usage errors, 0 for --help
        return int(exc.code or 0)
    try:
        return int(args.handler(args))
    except BadInput as exc:
        print(f"nn-parity: error: {exc.one_line()}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # the reader (e.g. `| head`) went away: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
