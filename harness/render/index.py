"""The index of a report folder (``<out>/README.md``): the scenarios counted by verdict, the
environment (or environments) the reports were made in, one row per scenario from its index entry
(``harness.render.header``), then the catalogue's coverage. ``index.html`` shows the same rows."""
from __future__ import annotations

from collections import Counter
from typing import Any

from harness.judge.compare import AGREE, DISAGREE, EXPLAINED
from harness.judge.diagnosis import NO_CAUSE
from harness.render.environment_text import ENVIRONMENT
from harness.render.header import GENERATED
from harness.render.legacy import UNKNOWN_ENVIRONMENT
from harness.run import environment


def index_counts(entries: list[dict[str, Any]]) -> str:
    """The index's first line: scenarios counted by the same words as the pairs."""
    agree = sum(1 for x in entries if x["verdict"] == AGREE)
    differ = sum(1 for x in entries if x["verdict"] == EXPLAINED)
    crashed = sum(1 for x in entries if x["verdict"].startswith("CRASHED"))
    disagree = [x for x in entries if x["verdict"] == DISAGREE]
    explained = sum(1 for x in disagree
                    if x.get("causes") and not any(c.endswith(NO_CAUSE) for c in x["causes"] if "(drift)" not in c))
    return (f"{len(entries)} scenario{'' if len(entries) == 1 else 's'}: {agree} {AGREE} in every pair and "
            f"dtype; {differ} {EXPLAINED} (some pair differs only by an optimizer convention or a framework's "
            f"dtype rule, each confirmed by the reference); {len(disagree)} {DISAGREE} ({explained} with every "
            f"divergence's cause confirmed by a "
            f"control run or a measurement); {crashed} with a crashed run.")


def index_environment(entries: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """The index's environment: ``(line, [])`` naming the one every report was made in, or a line and
    one item per environment with its number of reports (a folder can hold reports written earlier
    on another machine)."""
    seen = Counter(x.get("environment") or UNKNOWN_ENVIRONMENT for x in entries)
    if len(seen) <= 1:
        return f"{ENVIRONMENT}: {next(iter(seen), environment.environment_line())}.", []
    return (f"{ENVIRONMENT}s: the reports were made in {len(seen)} different ones (number of reports: environment).",
            [f"{n}: {where}" for where, n in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))])


INDEX_HEADER = ("scenario", "verdict", "in one line", "lab values", "worst diff / allowed (> 1: beyond)",
                "report")
WORST_NOTE = ("worst diff / allowed: max |a - b| / (atol + rtol * max(|a|, |b|)), the largest fraction of its "
              "tolerance any pair uses at any step, the quantity the verdict tests (a pair that differs, explained, "
              "is judged through the reference and left out here).")


def index_rows(entries: list[dict[str, Any]], *, suffix: str = ".md") -> list[list[str]]:
    """One row per scenario, sorted by name: the index's table cells (the link to ``<name><suffix>``)."""
    return [[x["name"], x["verdict"], x.get("line") or "-", x["lab"], x["worst"], f"{x['name']}{suffix}"]
            for x in sorted(entries, key=lambda x: x["name"])]


def index_markdown(entries: list[dict[str, Any]], *, coverage: str = "") -> str:
    """The index: one row per scenario, then ``coverage`` (the catalogue's coverage section,
    ``harness.spec.coverage.coverage_markdown``)."""
    where, each = index_environment(entries)
    lines = [GENERATED, "", "# nn-parity reports", "", index_counts(entries), "", where, "",
             *([f"- {item}" for item in each] + [""] if each else []), WORST_NOTE, "",
             "| " + " | ".join(INDEX_HEADER) + " |", "| " + " | ".join("---" for _ in INDEX_HEADER) + " |"]
    for name, state, line, lab, worst, link in index_rows(entries):
        lines.append(f"| {name} | {state} | {line} | {lab} | {worst} | [{link}]({link}) |")
    return "\n".join(lines) + "\n" + (f"\n{coverage}" if coverage else "")

