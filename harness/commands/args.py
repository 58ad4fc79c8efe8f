"""Argument types shared by the commands: each refuses a bad value with one line (exit 2)."""
from __future__ import annotations

import argparse

from harness.run.adapters import FRAMEWORKS
from harness.run.budget import parse_size
from harness.spec.scenario import DTYPES


def frameworks_arg(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in FRAMEWORKS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(FRAMEWORKS)}; "
                                         f"received {text!r}")
    return names


def dtypes_arg(text: str) -> tuple[str, ...]:
    if text == "both":
        return DTYPES
    if text in DTYPES:
        return (text,)
    raise argparse.ArgumentTypeError(f"expected float64, float32 or both; received {text!r}")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; received {text!r}")
    return value


def memory_size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
