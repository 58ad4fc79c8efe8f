"""Scenario names: the rule a name follows (lowercase letters, digits and dashes) and its check."""
from __future__ import annotations

import re

from harness.spec.fields import Table

# Scenario names become file names (<out>/<name>.md) and table cells: identifiers only.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]*")
NAME_MAX = 80
NAME_RULE = f"lowercase letters, digits and dashes, starting with a letter or digit, at most {NAME_MAX} characters"


def is_name(name: object) -> bool:
    """Whether ``name`` follows ``NAME_RULE``."""
    return isinstance(name, str) and len(name) <= NAME_MAX and NAME_PATTERN.fullmatch(name) is not None


def check_name(t: Table, key: str = "name") -> str:
    """A scenario name (or a variant's suffix): ``NAME_RULE``."""
    name = t.string(key)
    if not is_name(name):
        raise t.error(key, NAME_RULE, name)
    return name
