"""``nn-parity answers KEY.toml --out FILLED.toml``: the key with every missing answer filled in."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.answers.fill import filled_text
from harness.answers.key_file import Answer, load_key
from harness.answers.verdicts import HARNESS_FAULT, MALFORMED, UNANSWERED, AnswerResult, check_entry
from harness.commands.args import frameworks_arg
from harness.errors import EXIT_AGREE, EXIT_BAD_INPUT, EXIT_DISAGREE
from harness.render.files import check_output_file, write_text_atomic
from harness.run.adapters import FRAMEWORKS


def register(subparsers) -> None:
    p = subparsers.add_parser("answers", help="fill in an answer key's missing answers")
    p.add_argument("key", help="an answer-key .toml file")
    p.add_argument("--out", required=True, metavar="PATH", help="where to write the filled key (may be KEY itself)")
    p.add_argument("--frameworks", type=frameworks_arg, default=FRAMEWORKS,
                   help="comma-separated subset of numpy,keras,torch (default: all)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    key = load_key(args.key)
    check_output_file(args.out, option="--out")
    results = []
    for entry in key.entries:
        if isinstance(entry, Answer) and entry.expected is not None:
            results.append(AnswerResult(id=entry.id, kind=entry.kind, verdict="answered"))
            continue
        result = check_entry(entry, frameworks=args.frameworks)
        results.append(result)
        if result.verdict == UNANSWERED:
            values = "; ".join(" ".join(p.computed_text().split()) for p in result.parts)
            print(f"{result.id}: filled: {values}")
        elif result.verdict in (MALFORMED, HARNESS_FAULT):
            print(f"nn-parity: error: {result.id}: not filled: {result.message}", file=sys.stderr)
    text = filled_text(Path(args.key).read_text(), results)
    write_text_atomic(args.out, text)
    if any(r.verdict == MALFORMED for r in results):
        return EXIT_BAD_INPUT
    return EXIT_DISAGREE if any(r.verdict == HARNESS_FAULT for r in results) else EXIT_AGREE
