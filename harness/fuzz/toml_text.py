"""A scenario in the loader's dict form written as TOML text (the form ``read_toml`` parses back).

Only what the fuzzer draws: top-level strings and numbers, tables of scalars and arrays, inline
tables (the optimizer) and arrays of tables (``[[model.layers]]``). Floats are written with
``repr``, which round-trips exactly and is valid TOML for finite numbers."""
from __future__ import annotations

import json
import math
from typing import Any


def value(v: Any) -> str:
    """One TOML value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"a finite number, not {v!r}")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a TOML basic string (escapes included)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    raise TypeError(f"no TOML value for {type(v).__name__}")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _is_section(key: str, v: Any, *, top: bool) -> bool:
    """Written as ``[section]`` or ``[[array]]``: a top-level table, or an array of tables; any other
    table is inline (the optimizer)."""
    return _is_table_array(v) or (top and isinstance(v, dict))


def _table(header: str, fields: dict[str, Any], lines: list[str]) -> None:
    """``fields`` under ``header`` (``""``: the top level): scalars first, then sub-tables."""
    scalars = {k: v for k, v in fields.items() if not _is_section(k, v, top=not header)}
    if header:
        lines.append(header)
    lines.extend(f"{k} = {value(v)}" for k, v in scalars.items())
    lines.append("")
    prefix = header.strip("[]") + "." if header else ""
    for k, v in fields.items():
        if k in scalars:
            continue
        if _is_table_array(v):
            for item in v:
                _table(f"[[{prefix}{k}]]", item, lines)
        else:
            _table(f"[{prefix}{k}]", v, lines)




def to_toml(raw: dict[str, Any]) -> str:
    """The scenario ``raw`` (the loader's input) as TOML text."""
    lines: list[str] = []
    _table("", raw, lines)
    return "\n".join(lines).rstrip() + "\n"
