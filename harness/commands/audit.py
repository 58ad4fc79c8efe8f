"""``nn-parity audit FILE.py --function NAME --scenario NAME|FILE``: a hand-written backward pass audited."""
from __future__ import annotations

import argparse

from harness.answers.audit import ATOL, RTOL, audit_gradients, audit_text, load_function
from harness.errors import EXIT_AGREE, EXIT_DISAGREE
from harness.render.files import write_json
from harness.spec.catalogue import resolve


def register(subparsers) -> None:
    p = subparsers.add_parser("audit", help="compare a hand-written gradient function with autograd and finite "
                                            "differences")
    p.add_argument("file", help="a Python file defining the function")
    p.add_argument("--function", required=True, help="the function: (params, X, y) -> gradients")
    p.add_argument("--scenario", required=True, help="a catalogue name or scenario .toml file (model, loss, data)")
    p.add_argument("--json", metavar="PATH", help="also write the audit as JSON")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    scenario = resolve(args.scenario)
    fn = load_function(args.file, args.function)
    result = audit_gradients(fn, scenario, function_name=args.function)
    print(audit_text(result))
    if args.json:
        data = {"scenario": result.scenario, "function": result.function, "ok": result.ok,
                "tolerance": {"rtol": RTOL, "atol": ATOL}, "diagnosis": result.diagnosis,
                "implementation_spread": result.source_spread,
                "parameters": [{"name": p.name, "label": p.label, "status": p.status, "max_abs_diff": p.diffs,
                                "max_rel": p.max_rel, "message": p.message} for p in result.params]}
        write_json(args.json, data, indent=2)
    return EXIT_AGREE if result.ok else EXIT_DISAGREE
