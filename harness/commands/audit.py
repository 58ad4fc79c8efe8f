"""``nn-parity audit FILE.py --function NAME --scenario NAME|FILE``: a hand-written backward pass audited."""
from __future__ import annotations

import argparse
import math

from harness.answers.audit import ATOL, RTOL, audit_file, audit_text
from harness.answers.sandbox import MEMORY_LIMIT, TIMEOUT
from harness.errors import EXIT_AGREE, EXIT_DISAGREE
from harness.render.files import write_json
from harness.spec.catalogue import resolve

DESCRIPTION = """\
Compare a hand-written backward pass with the reference, torch autograd, TF GradientTape
and central finite differences, on the scenario's first batch and initial parameters."""

EPILOG = f"""\
audit EXECUTES the code in FILE. It runs in its own process (python -I), in a new process
group killed when the audit ends, with a wall-clock timeout ({TIMEOUT:g} s; --timeout), a memory
cap (RLIMIT_AS: {MEMORY_LIMIT / 2**30:g} GiB of address space) and a fresh temporary working directory,
deleted afterwards. FILE's folder is on sys.path (sibling imports work); its output is not
shown. Any end other than returning gradients (an exception, sys.exit, os._exit, a signal,
the timeout, a return value that is not gradients) is "crashed" for every parameter, with
the reason, and exit 1. This is not a security sandbox: the code can still read every file
and use the network that you can. Audit only code you would run.

exit codes: 0 every gradient agrees, 1 some gradient is wrong, missing, not finite or the
function crashed, 2 bad input (no such file or function, a forward-only scenario)."""


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds; received {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive, finite number of seconds; received {text!r}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "audit", help="run a hand-written gradient function (in its own process) and compare it with autograd "
                      "and finite differences",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="a Python file defining the function; it is executed (see below)")
    p.add_argument("--function", required=True, help="the function: (params, X, y) -> gradients")
    p.add_argument("--scenario", required=True,
                   help="a catalogue name or scenario .toml file with a [training] table (model, loss, data)")
    p.add_argument("--timeout", type=_seconds, default=TIMEOUT, metavar="SECONDS",
                   help=f"wall-clock limit for the submitted code's process (default {TIMEOUT:g})")
    p.add_argument("--json", metavar="PATH", help="also write the audit as JSON")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    scenario = resolve(args.scenario)
    result = audit_file(args.file, args.function, scenario, timeout=args.timeout)
    print(audit_text(result))
    if args.json:
        data = {"scenario": result.scenario, "function": result.function, "ok": result.ok,
                "tolerance": {"rtol": RTOL, "atol": ATOL}, "diagnosis": result.diagnosis, "crash": result.crash,
                "implementation_spread": result.source_spread,
                "parameters": [{"name": p.name, "label": p.label, "status": p.status, "max_abs_diff": p.diffs,
                                "max_rel": p.max_rel, "message": p.message} for p in result.params]}
        write_json(args.json, data, indent=2)
    return EXIT_AGREE if result.ok else EXIT_DISAGREE
