"""``nn-parity audit SUBMISSION... --function NAME --scenario NAME|FILE [--kind KIND]``: students'
forward passes, losses, backward passes, update steps and training loops audited, one file or a
whole class (``docs/audit.md``)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness.answers.audit import AuditResult, load_submission_adapter
from harness.answers.batch import (
    audit_batch,
    audit_one,
    batch_csv,
    batch_json,
    batch_text,
    collect,
    crashed,
    gradescope,
    is_batch,
    result_json,
    result_text,
)
from harness.answers.exports import feedback_files, gradebook_csv, gradescope_files
from harness.answers.kinds import AUDIT_KINDS, INTERFACES
from harness.answers.sandbox import MEMORY_LIMIT, TIMEOUT, SubmissionAdapter
from harness.commands.args import positive_int, seconds
from harness.commands.cli import COMMANDS
from harness.errors import EXIT_AGREE, EXIT_DISAGREE, BadInput
from harness.render.files import (
    check_output_files,
    check_output_folder,
    display_path,
    write_files_atomic,
    write_json,
    write_text_atomic,
)
from harness.run.cache import VARIABLE, RunCache, open_folder, use_cache
from harness.spec.catalogue import resolve
from harness.spec.scenario import Scenario

DESCRIPTION = """\
Audit a student's function as one more implementation beside the NumPy reference, Keras and
torch. --kind says what the function is (default backward):
{interfaces}
backward is compared with the reference, torch autograd, TF GradientTape and finite
differences on the first batch; forward, loss and step at the reference's parameters before
steps 0-3; train step by step over the whole run (docs/audit.md says what a train may
return and how its batches are given). What is wrong is localised (first step, stage), its
suspect named, and its cause named only when a replay with that mistake reproduces it.
A submission is a Python file or a Jupyter notebook (its definitions are run: see
docs/audit.md); several files, a folder or a glob pattern audit a whole class at once.""".format(
    interfaces="\n".join(f"  {kind:<9} {interface}" for kind, interface in INTERFACES.items()))

EPILOG = f"""\
audit EXECUTES the submitted code. Each submission runs in its own process (python -I), in a
new process group killed when its audit ends (or the audit itself, even by SIGKILL), with a
CPU-time limit (RLIMIT_CPU: the timeout times the cores) and a wall-clock timeout ({TIMEOUT:g} s; --timeout),
a memory cap (RLIMIT_AS: {MEMORY_LIMIT / 2**30:g} GiB of address space) and a fresh temporary working
directory, deleted afterwards. The file's folder is on sys.path (sibling imports work); its
output is not shown. Any end other than returning gradients (an exception, sys.exit, os._exit,
a signal, the timeout, a return value that is not gradients) is "crashed" for every parameter,
with the reason, and exit 1. This is not a security sandbox: the code can still read every
file and use the network that you can. Audit only code you would run.

A notebook: from each code cell, in order, the statements that define names (import, def,
class, assignments of constants) run; loading data, training, plotting, printing do not, nor
cells tagged skip-audit (a cell tagged audit runs whole); what is not run is listed.

A batch (several files, a folder, a glob): one row per submission, sorted; a broken, crashing
or hanging submission is a row ("crashed"), never the end of the batch.

With $NN_PARITY_CACHE naming a folder, Keras' and torch's gradients of a backward audit are kept
in that run cache (nn-parity cache info|verify|clear) and served to the next audit of the same
scenario made with the same code and environment; without it nothing is kept.

exit codes: 0 every gradient of every submission agrees, 1 some gradient is wrong, missing,
not finite or a submission crashed, 2 bad input (no such file or function, a file that is no
notebook (one submission), a forward-only scenario, an output that cannot be written)."""


def register(subparsers) -> None:
    p = subparsers.add_parser("audit", help=COMMANDS["audit"], description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                   help="a .py file or .ipynb notebook defining the function (it is executed, see below); "
                        "several, a folder or a glob pattern for a batch")
    p.add_argument("--function", required=True, help="the function's name (its interface: --kind)")
    p.add_argument("--kind", choices=AUDIT_KINDS, default="backward",
                   help="what the function computes (default backward): " + "; ".join(INTERFACES.values()))
    p.add_argument("--scenario", required=True,
                   help="a catalogue name or scenario .toml file with a [training] table (model, loss, data)")
    p.add_argument("--adapter", metavar="FILE.py",
                   help="your Python file, run after each submission in its namespace: e.g. a --function "
                        "wrapping the students' class in (params, X, y) -> gradients")
    p.add_argument("--timeout", type=seconds, default=TIMEOUT, metavar="SECONDS",
                   help=f"wall-clock limit for each submission's process (default {TIMEOUT:g})")
    p.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1, metavar="N",
                   help="submissions audited at once (default: the number of cores)")
    p.add_argument("--json", metavar="PATH", help="also write the audit as JSON")
    p.add_argument("--csv", metavar="PATH", help="also write one row per submission: file, verdict, score, "
                                                 "max_score, diagnosis")
    p.add_argument("--gradescope", metavar="PATH",
                   help="also write Gradescope's autograder results.json: one submission, the file PATH; a batch, "
                        "one <submission>.results.json per submission in the folder PATH")
    p.add_argument("--gradebook", metavar="PATH",
                   help="also write a gradebook CSV for Canvas and Moodle: Student, ID, SIS User ID, SIS Login ID, "
                        "Section, '<function> (<points>)', Feedback")
    p.add_argument("--feedback", metavar="DIR",
                   help="also write one markdown file per submission for the student: what is right, the first "
                        "thing that is wrong, where, and the evidence (no expected values)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (there is none when stderr is no terminal)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    with use_cache(_frameworks_cache()):
        return _handle(args)


def _frameworks_cache() -> RunCache | None:
    """The run cache ``$NN_PARITY_CACHE`` names, for the frameworks' gradients of a backward audit
    (``harness.answers.audit``: a Keras start per scenario, not per command); None without it: unless
    asked, an audit writes nothing but its outputs (no ``.nn-parity-cache/`` in a class's folder)."""
    folder = os.environ.get(VARIABLE)
    return None if folder is None else open_folder(folder, f"${VARIABLE}")


def _handle(args: argparse.Namespace) -> int:
    batch = is_batch(args.submissions)
    paths = collect(args.submissions) if batch else [Path(args.submissions[0])]
    scenario = resolve(args.scenario)
    files = ("json", "csv", "gradebook") + (() if batch else ("gradescope",))
    check_output_files([(f"--{option}", getattr(args, option)) for option in files],
                       inputs=[*paths, scenario.path, *([args.adapter] if args.adapter else [])])
    for option in ("feedback",) + (("gradescope",) if batch else ()):
        if getattr(args, option):
            check_output_folder(getattr(args, option), option=f"--{option}")
    submission_adapter = load_submission_adapter(args.adapter) if args.adapter else None
    if batch:
        return _batch(args, paths, scenario, submission_adapter)
    try:
        result = audit_one(args.submissions[0], args.function, scenario, kind=args.kind, timeout=args.timeout,
                           submission_adapter=submission_adapter)
    except BadInput as exc:
        if args.gradescope and exc.field in ("", "--function", "nbformat"):  # the submission's fault: say why
            reason = BadInput(display_path(Path(exc.file)), exc.field, exc.expected, exc.received).one_line()
            write_json(args.gradescope, gradescope(crashed(scenario, args.function, reason, kind=args.kind,
                                                           file=display_path(Path(args.submissions[0])))), indent=2)
        raise
    print(result_text(result))
    _write(args, [result], scenario, single=True)
    return EXIT_AGREE if result.ok else EXIT_DISAGREE


def _batch(args: argparse.Namespace, paths: list[Path], scenario: Scenario,
           submission_adapter: SubmissionAdapter | None) -> int:
    progress = not args.quiet and sys.stderr.isatty()
    results = audit_batch(paths, args.function, scenario, jobs=args.jobs, timeout=args.timeout,
                          submission_adapter=submission_adapter, progress=progress, kind=args.kind)
    print(batch_text(results, scenario, args.function))
    _write(args, results, scenario, single=False)
    return EXIT_AGREE if all(r.ok for r in results) else EXIT_DISAGREE


def _write(args: argparse.Namespace, results: list[AuditResult], scenario: Scenario, *, single: bool) -> None:
    if args.json:
        data = result_json(results[0]) if single else batch_json(results, scenario, args.function)
        write_json(args.json, data, indent=2)
    if args.csv:
        write_text_atomic(args.csv, batch_csv(results))
    if args.gradebook:
        write_text_atomic(args.gradebook, gradebook_csv(results))
    if args.gradescope:
        if single:
            write_json(args.gradescope, gradescope(results[0]), indent=2)
        else:
            write_files_atomic(args.gradescope, gradescope_files(results))
    if args.feedback:
        write_files_atomic(args.feedback, feedback_files(results))
