"""``nn-parity report``: run every catalogue scenario and write the markdown reports (``--html``: also
HTML pages (with one shared plotly script) and ``index.html``), by default into ``build/reports/`` (git-ignored: a
report made on another machine differs in float32's last digits; the committed catalogue in
``reports/`` is refreshed on purpose, by ``make publish``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.commands.args import FRAMEWORKS_HELP, add_execution_options, frameworks_arg, memory_size
from harness.commands.cli import COMMANDS, interrupts_deferred
from harness.errors import EXIT_AGREE, EXIT_DISAGREE
from harness.judge.diagnosis import Diagnosis
from harness.judge.result import ScenarioResult
from harness.pipeline import Prepared, prepare, report_scenarios
from harness.render.coverage import coverage_markdown
from harness.render.file_set import report_set, scenario_files, timings_text
from harness.render.files import check_output_folder, write_files_atomic
from harness.render.header import index_entry, read_index_entry
from harness.render.html import index_page, shared_files
from harness.render.index import INDEX_HEADER, WORST_NOTE, index_counts, index_environment, index_markdown, index_rows
from harness.run import progress as overall_progress
from harness.run.adapters import FRAMEWORKS
from harness.run.progress import Progress
from harness.spec.catalogue import catalogue_scenarios, resolve_all
from harness.spec.scenario import Scenario

DEFAULT_OUT = "build/reports"  # git-ignored; the published catalogue (reports/) only by --out


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help=COMMANDS["report"])
    p.add_argument("--scenario", action="append", metavar="NAME",
                   help="only this scenario (repeatable); the index still lists every report in --out")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help=f"output folder (default: {DEFAULT_OUT}; `make publish` writes the committed reports/)")
    p.add_argument("--frameworks", type=frameworks_arg, default=FRAMEWORKS,
                   help=FRAMEWORKS_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--html", action="store_true",
                   help="also write a page per scenario (<scenario>.html, interactive plots; each loads the folder's "
                        "one plotly-<version>.min.js and its PNGs, no network needed to view it) and index.html")
    p.add_argument("--max-memory", type=memory_size, metavar="SIZE",
                   help="refuse a scenario whose runs would need more memory (e.g. 8G; default: the machine's)")
    add_execution_options(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_output_folder(out, option="--out")
    progress = None if args.quiet else overall_progress.say
    scenarios = ([s for n in args.scenario for s in resolve_all(n)] if args.scenario
                 else catalogue_scenarios())
    # every scenario must be runnable before the first one runs; then all the runs at once (the
    # frameworks' workers go on to the next scenario while the reference computes), each report made
    # as soon as its scenario's runs are (``report_scenarios``)
    prepared = [prepare(scenario, frameworks=args.frameworks, max_bytes=args.max_memory) for scenario in scenarios]
    with overall_progress.overall(overall_progress.RUNS, enabled=not args.quiet):
        made, all_agree = _make(prepared, html=args.html, progress=progress)
    with interrupts_deferred():
        done = _write(out, made, html=args.html)
    all_agree = all_agree and all(result.ok for _, result, _, _ in made)
    if progress:
        progress(f"wrote {len(done)} report(s) and {out / 'README.md'}")
    return EXIT_AGREE if all_agree else EXIT_DISAGREE


_Made = tuple[Scenario, ScenarioResult, list[Diagnosis], dict[str, bytes]]


def _make(prepared: list[Prepared], *, html: bool, progress: Progress | None) -> tuple[list[_Made], bool]:
    """Every report's files, made before any is written: an interrupt (Ctrl-C, SIGTERM) before the end
    leaves --out as it was (the writes are then one step that an interrupt does not cut: it takes
    effect after them); and whether none failed."""
    def files(result: ScenarioResult, diagnoses: list[Diagnosis] | Exception
              ) -> tuple[list[Diagnosis], dict[str, bytes]] | Exception:
        try:
            if isinstance(diagnoses, Exception):
                raise diagnoses
            return diagnoses, scenario_files(result, diagnoses, html=html)
        except Exception as exc:  # a harness failure: the previous report is kept, the others go on
            return exc

    made, all_made = [], True
    for result, found in report_scenarios(prepared, files, progress=progress):
        if isinstance(found, Exception):
            print(f"nn-parity: error: {result.scenario.name}: report not written, the previous one is kept "
                  f"({type(found).__name__}: {found})", file=sys.stderr)
            all_made = False
        else:
            made.append((result.scenario, result, *found))
    return made, all_made


def _write(out: Path, made: list[_Made], *, html: bool) -> set[str]:
    """Each report (as a set, ``write_files_atomic``), then the index of every report in ``out``;
    the names of the scenarios written."""
    entries, done = [], set()
    if html:  # before any page: each page loads the folder's one copy of plotly's JavaScript
        write_files_atomic(out, shared_files())
    for scenario, result, diagnoses, files in made:
        write_files_atomic(out, files, commit=f"{scenario.name}.md", belongs=report_set(scenario.name))
        write_files_atomic(out, {f"{scenario.name}.timings.tsv": timings_text(result).encode()})
        entries.append(index_entry(result, diagnoses))
        done.add(scenario.name)
    for path in sorted(out.glob("*.md")):  # reports written earlier into --out stay in the index
        if path.stem not in done and path.name != "README.md":
            previous = read_index_entry(path)
            if previous is not None:
                entries.append(previous)
    index = {"README.md": index_markdown(entries, coverage=coverage_markdown()).encode()}
    if html or (out / "index.html").is_file():  # it lists the scenarios that have a page in --out (a
        # report regenerated without --html removes its stale page)
        pages = [x for x in entries if (out / f"{x['name']}.html").is_file()]
        index["index.html"] = index_page(index_counts(pages), WORST_NOTE, INDEX_HEADER,
                                         index_rows(pages, suffix=".html"),
                                         environment=index_environment(pages)).encode()
    write_files_atomic(out, index)
    return done
