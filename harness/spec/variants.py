"""``[[variants]]``: one file, several scenarios, each the file's fields with some set (``set``) and its
own lab values added; ``expand_variants`` makes each variant's raw scenario before it is parsed.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from harness.spec.fields import Table
from harness.spec.names import NAME_MAX, check_name

VARIANT_KEYS = {"name", "set", "lab_values"}


def expand_variants(raw: dict[str, Any], *, path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``[[variants]]``: each table names a suffix (scenario ``<name>-<suffix>``), sets dotted fields
    of the file (``"model.layers.0.units" = 4``) and may add its own ``[[variants.lab_values]]``
    to the file's. Returns ``(where, raw scenario)`` per variant."""
    top = Table(raw, file=path)
    base_name = check_name(top)
    base = {k: v for k, v in raw.items() if k != "variants"}
    shared = [lab.data for lab in top.tables("lab_values", required=False)]
    out, seen = [], set()
    for t in top.tables("variants"):
        t.check_keys(VARIANT_KEYS)
        suffix = check_name(t)
        if suffix in seen:
            raise t.error("name", "a suffix not used by another variant", suffix)
        seen.add(suffix)
        full = f"{base_name}-{suffix}"
        if len(full) > NAME_MAX:
            raise t.error("name", f"a suffix short enough for the scenario name {base_name}-<suffix> to have at "
                          f"most {NAME_MAX} characters", full)
        variant = copy.deepcopy(base)
        for dotted, value in t.sub("set", required=False).data.items():
            _assign(variant, dotted, value, where=t)
        variant["name"] = full
        variant["lab_values"] = shared + [lab.data for lab in t.tables("lab_values", required=False)]
        out.append((t.where, variant))
    if not out:
        raise top.error("variants", "at least one [[variants]] table", "none")
    return out


def _assign(raw: dict[str, Any], dotted: str, value: Any, *, where: Table) -> None:
    """Set ``a.b.0.c`` in nested tables and arrays of tables (numbers index arrays)."""
    node: Any = raw
    keys = dotted.split(".")
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        index: int | str = key
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise where.error(f"set.\"{dotted}\"", f"an index below {len(node)} at {key!r}", key)
            index = int(key)
        elif not isinstance(node, dict):
            raise where.error(f"set.\"{dotted}\"", "a path through tables and arrays of the file", dotted)
        elif not last and key not in node:
            raise where.error(f"set.\"{dotted}\"", f"an existing field at {key!r}", dotted)
        if last:
            node[index] = copy.deepcopy(value)
        else:
            node = node[index]
