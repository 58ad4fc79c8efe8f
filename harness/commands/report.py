"""``nn-parity report``: run every catalogue scenario and write the markdown reports."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import EXIT_AGREE, EXIT_DISAGREE
from harness.report import index_markdown, read_summary, scenario_markdown, summary
from harness.results_json import write_text_atomic
from harness.runner import run_scenario
from harness.scenario import catalogue, load_scenario, resolve


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="run the catalogue and write reports/<scenario>.md and the index")
    p.add_argument("--scenario", action="append", metavar="NAME",
                   help="only this scenario (repeatable); the index still lists every report in --out")
    p.add_argument("--out", default="reports", metavar="DIR", help="output folder (default: reports)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    out = Path(args.out)
    progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    scenarios = [resolve(n) for n in args.scenario] if args.scenario else [load_scenario(p) for p in catalogue()]
    results = []
    for scenario in scenarios:
        result = run_scenario(scenario, progress=progress)
        write_text_atomic(out / f"{scenario.name}.md", scenario_markdown(result))
        results.append(result)
    summaries = [summary(r) for r in results]
    done = {r.scenario.name for r in results}
    for path in sorted(out.glob("*.md")):  # reports written earlier into --out stay in the index
        if path.stem not in done and path.name != "README.md":
            previous = read_summary(path)
            if previous is not None:
                summaries.append(previous)
    write_text_atomic(out / "README.md", index_markdown(summaries))
    if progress:
        progress(f"wrote {len(scenarios)} report(s) and {out / 'README.md'}")
    return EXIT_AGREE if all(r.agree for r in results) else EXIT_DISAGREE
