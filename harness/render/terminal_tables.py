"""Tables printed on a terminal fit its width: a table wider than the terminal is folded into parts,
each repeating the row's key columns (``pair`` and ``dtype``, ``framework``, ...) beside as many other
columns as fit, and a cell still too wide is wrapped onto several lines. Files (reports, JSON) and
output sent to a pipe or a file keep every table whole: only a terminal (or ``$COLUMNS``) folds."""
from __future__ import annotations

import os
import sys
from shutil import get_terminal_size

import pandas as pd
from tabulate import tabulate  # type: ignore[import-untyped]  # no stubs; pyproject is pinned

from harness.render.tables import markdown_table

KEY_COLUMNS = ("pair", "dtype", "framework", "implementation", "parameter", "quantity", "row")
MIN_WIDTH = 40  # narrower than this, a table is folded as if it were this wide
MIN_CELL = 8  # a column is never wrapped narrower than this


def terminal_width() -> int | None:
    """The terminal's columns (``shutil.get_terminal_size``, which reads ``$COLUMNS`` first) when
    stdout is a terminal or ``$COLUMNS`` is set; None (nothing folded) for a pipe or a file."""
    if os.environ.get("COLUMNS", "").strip().isdigit() or sys.stdout.isatty():
        return max(get_terminal_size().columns, MIN_WIDTH)
    return None


def _render(df: pd.DataFrame, shown: list[str], caps: dict[str, int]) -> str:
    return tabulate(df[shown].astype(str).values.tolist(), headers=shown, tablefmt="pipe", disable_numparse=True,
                    maxcolwidths=[caps.get(c) for c in shown], maxheadercolwidths=[caps.get(c) for c in shown])


def _widest(text: str) -> int:
    return max(map(len, text.splitlines()), default=0)


def _fold(df: pd.DataFrame, shown: list[str], keys: list[str], width: int) -> str:
    """The columns ``shown`` as one table at most ``width`` wide: the widest cells wrapped, the other
    columns before the keys, none narrower than ``MIN_CELL``."""
    caps: dict[str, int] = {}
    text = _render(df, shown, caps)
    while _widest(text) > width:
        natural = {c: max(len(line) for v in [c, *df[c].astype(str)] for line in v.splitlines() or [""])
                   for c in shown}
        current = {c: caps.get(c, natural[c]) for c in shown}
        movable = [c for c in shown if c not in keys and current[c] > MIN_CELL] or \
                  [c for c in shown if current[c] > MIN_CELL]
        if not movable:
            break
        widest = max(movable, key=lambda c: current[c])
        caps[widest] = max(MIN_CELL, current[widest] - (_widest(text) - width))
        text = _render(df, shown, caps)
    return text


def fitted(df: pd.DataFrame, *, width: int | None = None) -> str:
    """``df`` as a markdown table (``tables.markdown_table``) when it fits in ``width`` columns (None: no
    limit), else folded into parts that each fit: the key columns (``KEY_COLUMNS``: the first one or
    two, repeated in every part), then as many of the others as fit, the widest cells wrapped onto
    several lines; each part opens with a line saying it is one."""
    whole = markdown_table(df)
    if width is None or _widest(whole) <= width:
        return whole
    columns = [str(c) for c in df.columns]
    keys = [c for c in columns[:2] if c in KEY_COLUMNS] or columns[:1]
    parts: list[list[str]] = []
    for c in (c for c in columns if c not in keys):
        if parts and _widest(_render(df, keys + parts[-1] + [c], {})) <= width:
            parts[-1].append(c)
        else:
            parts.append([c])
    tables = [_fold(df, keys + part, keys, width) for part in parts or [[]]]
    if len(tables) == 1:
        return tables[0]
    return "\n\n".join(f"(part {i + 1} of {len(tables)}, folded to {width} columns)\n{table}"
                       for i, table in enumerate(tables))


def terminal_table(df: pd.DataFrame) -> str:
    """``df`` as ``nn-parity`` prints it on stdout: whole, or folded to the terminal's width."""
    return fitted(df, width=terminal_width())
