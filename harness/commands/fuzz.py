"""``nn-parity fuzz``: search the scenario space for what the harness cannot explain, and shrink
each finding to a scenario file (``harness.fuzz``; docs/fuzz.md)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.commands.args import dtypes_arg, frameworks_arg, positive_int
from harness.commands.cli import COMMANDS
from harness.errors import EXIT_AGREE, EXIT_DISAGREE
from harness.fuzz.campaign import Campaign
from harness.fuzz.output import summary, write_findings, write_summary
from harness.render.files import check_output_files, check_output_folder
from harness.run.adapters import FRAMEWORKS
from harness.spec.fields import SEED_MAX
from harness.spec.scenario import DTYPES

DEFAULT_OUT = "build/fuzz"


def seed_arg(text: str) -> int:
    """A campaign's seed: an integer in [0, 2**32 - 1]."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer seed in [0, {SEED_MAX}]; received {text!r}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser("fuzz", help=COMMANDS["fuzz"])
    p.add_argument("--frameworks", type=frameworks_arg, default=FRAMEWORKS,
                   help="comma-separated implementations every example runs in (default numpy,keras,torch)")
    p.add_argument("--dtype", type=dtypes_arg, default=DTYPES, dest="dtypes",
                   help="float64, float32 or both (default: both)")
    p.add_argument("--examples", type=positive_int, default=100, metavar="N", help="scenarios drawn (default 100)")
    p.add_argument("--seed", type=seed_arg, default=0, metavar="S",
                   help="the campaign's seed: the same seed draws the same examples (default 0)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help=f"where findings/<fingerprint>.toml and the hypothesis database go (default {DEFAULT_OUT})")
    p.add_argument("--json", metavar="PATH", help="also write the campaign's summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    check_output_folder(args.out, option="--out")
    check_output_files([("--json", args.json)])
    campaign = Campaign(frameworks=args.frameworks, dtypes=args.dtypes, max_examples=args.examples,
                        seed=args.seed, out=Path(args.out))
    report = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        campaign.search(report)
        for record in sorted(campaign.records.values(), key=lambda r: r.fingerprint):
            campaign.shrink(record, report)
    except KeyboardInterrupt:  # what was found so far is written, then the CLI says "interrupted" (130)
        _write(campaign, args)
        raise
    _write(campaign, args)
    _print(campaign)
    return EXIT_DISAGREE if campaign.records else EXIT_AGREE


def _write(campaign: Campaign, args: argparse.Namespace) -> None:
    write_findings(campaign)
    if args.json:
        write_summary(campaign, args.json)


def _print(campaign: Campaign) -> None:
    s = summary(campaign)
    outcomes = ", ".join(f"{kind} {n}" for kind, n in s["outcomes"].items())
    print(f"{s['examples']} examples in {s['seconds']:.0f} s ({s['examples_per_hour']:.0f}/hour): {outcomes}")
    for reason, n in s["reasons"].items():
        print(f"  {n} x {reason}")
    if not s["findings"]:
        print("no finding: every example agrees, differs explained, or is ill-conditioned by nature")
    for f in s["findings"]:
        print(f"finding ({f['count']} examples): {f['fingerprint']}\n  {f['replay']}")
