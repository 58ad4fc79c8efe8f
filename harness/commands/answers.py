"""``nn-parity answers KEY.toml --out FILLED.toml``: the key with every missing answer filled in.

Every answer is checked, the answered ones too: the key is written with the unanswered ones
filled, and each answer left wrong, implausible or faulty (the implementations disagree or
crashed) is named on stderr with why (exit 1); a malformed answer is left empty (exit 2).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.answers.fill import filled_text
from harness.answers.key_file import load_key
from harness.answers.output import note_text
from harness.answers.verdicts import (
    HARNESS_FAULT,
    IMPLAUSIBLE,
    MALFORMED,
    UNANSWERED,
    WRONG,
    AnswerResult,
    check_entry,
)
from harness.commands.args import FRAMEWORKS_HELP, frameworks_arg
from harness.commands.cli import COMMANDS
from harness.errors import EXIT_AGREE, EXIT_BAD_INPUT, EXIT_DISAGREE
from harness.render.files import check_output_file, write_text_atomic
from harness.run.adapters import FRAMEWORKS

LEFT = (WRONG, IMPLAUSIBLE, HARNESS_FAULT)  # answered, but not right: reported, exit 1


def register(subparsers) -> None:
    p = subparsers.add_parser("answers", help=COMMANDS["answers"])
    p.add_argument("key", help="an answer-key .toml file")
    p.add_argument("--out", required=True, metavar="PATH", help="where to write the filled key (may be KEY itself)")
    p.add_argument("--frameworks", type=frameworks_arg, default=FRAMEWORKS,
                   help=FRAMEWORKS_HELP)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    key = load_key(args.key)
    check_output_file(args.out, option="--out")
    results: list[AnswerResult] = []
    for entry in key.entries:
        result = check_entry(entry, frameworks=args.frameworks)
        results.append(result)
        if result.verdict == UNANSWERED:
            values = "; ".join(" ".join(p.computed_text().split()) for p in result.parts)
            print(f"{result.id}: filled: {values}")
        elif result.verdict == MALFORMED:
            print(f"nn-parity: error: {result.id}: not filled: {result.message}", file=sys.stderr)
        elif result.verdict in LEFT:
            print(f"nn-parity: {result.id}: left {result.verdict}: {_why(result)}", file=sys.stderr)
    text = filled_text(Path(args.key).read_text(), results)
    write_text_atomic(args.out, text)
    if any(r.verdict == MALFORMED for r in results):
        return EXIT_BAD_INPUT
    return EXIT_DISAGREE if any(r.verdict in LEFT for r in results) else EXIT_AGREE


def _why(result: AnswerResult) -> str:
    """One line: the fault or implausibility, or (wrong) each wrong part's correct value, and its wrong element's
    difference and own allowance."""
    if result.verdict != WRONG:
        return note_text(result.message, width=300)
    pieces = []
    for p in result.parts:
        if p.expected is not None and not p.ok:
            label = "" if p.part == "value" else f"{p.part}: "
            element = p.worst()
            where = f" at {element.where}" if element is not None and element.where else ""
            beyond = "" if element is None else f"{where}, beyond its allowance {element.allowed:.2e}"
            differs = p.max_abs_diff if element is None else element.diff
            pieces.append(f"{label}correct value {' '.join(p.computed_text().split())} "
                          f"(differs by {differs:.2e}{beyond})")
    return "; ".join(pieces)
