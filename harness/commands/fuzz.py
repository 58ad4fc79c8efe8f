"""``nn-parity fuzz``: search the scenario space for what the harness cannot explain, and shrink
each finding to a scenario file (``harness.fuzz``; docs/fuzz.md)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.commands.args import add_executor_options, dtypes_arg, duration, frameworks_arg, memory_size, positive_int
from harness.commands.cli import COMMANDS
from harness.errors import EXIT_AGREE, EXIT_DISAGREE
from harness.fuzz.campaign import DATABASE, Campaign
from harness.fuzz.draw import hypothesis_home
from harness.fuzz.index import write_index
from harness.fuzz.output import summary, write_findings, write_summary
from harness.fuzz.progress import reporter_for
from harness.fuzz.replay import replay
from harness.fuzz.space import WHOLE, examples
from harness.fuzz.space_file import read_space
from harness.render.files import check_output_files, check_output_folder, write_json
from harness.run.adapters import FRAMEWORKS
from harness.spec.fields import SEED_MAX
from harness.spec.scenario import DTYPES

DEFAULT_OUT = "build/fuzz"
DEFAULT_EXAMPLES = 100


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
    p.add_argument("--frameworks", type=frameworks_arg,
                   help="comma-separated implementations every example runs in (default numpy,keras,torch, or "
                        "the --space file's)")
    p.add_argument("--dtype", type=dtypes_arg, dest="dtypes",
                   help="float64, float32 or both (default: both, or the --space file's)")
    p.add_argument("--space", metavar="FILE.toml",
                   help="narrow or widen the draw, in the scenario format's words (docs/fuzz.md)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--examples", type=positive_int, metavar="N",
                        help=f"scenarios drawn (default {DEFAULT_EXAMPLES})")
    budget.add_argument("--time", type=duration, metavar="DURATION",
                        help="search for this long instead (90s, 10m, 1h); the shrinks come after it")
    p.add_argument("--seed", type=seed_arg, default=0, metavar="S",
                   help="the campaign's seed: the same seed draws the same examples (default 0)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help=f"where findings/<fingerprint>.toml and the hypothesis database go (default {DEFAULT_OUT})")
    p.add_argument("--json", metavar="PATH", help="also write the campaign's summary as JSON")
    p.add_argument("--html", action="store_true", help="also write <out>/index.html beside index.md and index.json")
    p.add_argument("--replay", metavar="DIR",
                   help="run only the findings saved in DIR (a campaign's --out) again: exit 1 if any is still found")
    p.add_argument("--max-memory", type=memory_size, metavar="SIZE",
                   help="what the runs judged together may hold (e.g. 8G; default: the machine's memory)")
    add_executor_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    check_output_files([("--json", args.json)])
    space, frameworks, dtypes = read_space(args.space) if args.space is not None else (WHOLE, None, None)
    args.frameworks = args.frameworks or frameworks or FRAMEWORKS
    args.dtypes = args.dtypes or dtypes or DTYPES
    if args.replay is not None:
        return _replay(args)
    check_output_folder(args.out, option="--out")
    out = Path(args.out)
    campaign = Campaign(frameworks=args.frameworks, dtypes=args.dtypes, seed=args.seed, out=out,
                        max_examples=None if args.time else args.examples or DEFAULT_EXAMPLES,
                        time_limit=args.time, max_bytes=args.max_memory,
                        strategy=examples(args.frameworks, space))
    reporter = reporter_for(quiet=args.quiet, stream=sys.stderr)
    try:
        with hypothesis_home(out / DATABASE), reporter:
            campaign.search(reporter)
            for record in sorted(campaign.records.values(), key=lambda r: r.fingerprint):
                campaign.shrink(record, reporter)
    except KeyboardInterrupt:  # what was found so far is written, then the CLI says "interrupted" (130)
        _write(campaign, args)
        raise
    _write(campaign, args)
    _print(campaign)
    return EXIT_DISAGREE if campaign.records else EXIT_AGREE


def _write(campaign: Campaign, args: argparse.Namespace) -> None:
    write_findings(campaign)
    write_index(campaign, html=args.html)
    if args.json:
        write_summary(campaign, args.json)


def _replay(args: argparse.Namespace) -> int:
    replayed = replay(Path(args.replay), frameworks=args.frameworks, dtypes=args.dtypes, max_bytes=args.max_memory)
    for r in replayed:
        print(r.line())
    still = [r for r in replayed if r.still_found]
    print(f"{len(still)} of {len(replayed)} saved findings still found")
    if args.json:
        write_json(args.json, {"frameworks": list(args.frameworks), "dtypes": list(args.dtypes), "replayed": [
            {"file": r.file, "saved": r.saved.text() if r.saved else None, "now": r.now.kind,
             "reason": r.now.reason, "still_found": r.still_found,
             "fingerprints": [fp.text() for fp in sorted(r.now.fingerprints)]} for r in replayed]})
    return EXIT_DISAGREE if still else EXIT_AGREE


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
