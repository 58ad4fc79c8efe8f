"""``nn-parity list``: the catalogue, with title and source. Imports no framework."""
from __future__ import annotations

import argparse

import pandas as pd

from harness.commands.cli import COMMANDS
from harness.errors import BadInput
from harness.spec.catalogue import catalogue
from harness.spec.scenario import load_scenarios


def register(subparsers) -> None:
    p = subparsers.add_parser("list", help=COMMANDS["list"])
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:  # noqa: ARG001 - every command's handler takes the parsed arguments
    rows = []
    for path in catalogue():
        try:
            rows += [{"name": s.name, "title": s.title, "source": s.source} for s in load_scenarios(path)]
        except BadInput as exc:
            rows.append({"name": path.stem, "title": f"(invalid: {exc.one_line()})", "source": ""})
    print(pd.DataFrame(rows).to_markdown(index=False) if rows else "no scenarios found")
    return 0
