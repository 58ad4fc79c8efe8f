"""Index entries written by earlier versions, in today's terms: a report already in the output folder
keeps its row in the index however old it is. Earlier versions wrote other verdict words and had
no ``line`` or ``environment`` field."""
from __future__ import annotations

from typing import Any

from harness.judge.compare import DISAGREE, EXPLAINED

# Verdicts in entries written by earlier versions, in today's words.
LEGACY_VERDICTS = {"DISAGREE": DISAGREE, "agree (frameworks differ only by optimizer convention)": EXPLAINED}
ADDED_FIELDS = ("line", "environment")  # absent from entries written by earlier versions
UNKNOWN_ENVIRONMENT = "not recorded (a report written by an earlier version)"


def in_todays_terms(entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` with today's verdict words, its causes as its line when it has none, and an unknown
    environment when it names none."""
    verdict = entry["verdict"]
    return {"line": "; ".join(c for c in entry["causes"] if isinstance(c, str)) or "-",
            "environment": UNKNOWN_ENVIRONMENT, **entry,
            "verdict": LEGACY_VERDICTS.get(verdict, verdict) if isinstance(verdict, str) else verdict}
