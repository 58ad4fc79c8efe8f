"""A scenario's markdown report (``<out>/<scenario>.md``): its header, then the opening above the fold
(title, environment line, verdict, the lead, crashed runs, the pairs table, one line per diagnosed
pair, a tolerance the scenario sets itself, the plots), then the whole summary and every section of
``harness.render.sections``, each folded in ``<details>``.

Reports are generated, never edited by hand, and deterministic: the same inputs on the same machine
give the same bytes (no timings, no dates, no absolute paths).
"""
from __future__ import annotations

from typing import Sequence

from harness.judge.diagnosis import Diagnosis
from harness.judge.result import ScenarioResult
from harness.render.details import folded
from harness.render.diagnosis_text import diagnosis_digest
from harness.render.environment_text import ENVIRONMENT
from harness.render.files import display_path
from harness.render.free_text import free_line
from harness.render.header import header_lines
from harness.render.measures import explained_gap
from harness.render.sections import Section, sections_of, tolerance_overrides
from harness.render.sentences import lead_paragraph, summary_paragraph, verdict_line
from harness.render.tables import markdown_table, pairs_table
from harness.run import environment
from harness.spec.comments import tolerance_reason

IN_FULL = "The whole summary"  # the folded block that holds ``summary_paragraph``


def crash_lines(result: ScenarioResult) -> list[str]:
    """One line per crashed run, with the exception's last line."""
    return [f"- **{fw} ({dtype}) crashed**: {run.message}" for (fw, dtype), run in result.runs.items()
            if run.status == "crashed"]


def tolerance_override_line(result: ScenarioResult) -> str:
    """Above the fold, for a scenario that sets its own tolerance: which, and why in the scenario
    file's own words (the comment above its ``[tolerance]`` table, ``harness.spec.comments``), as
    inert text; empty when it keeps the defaults."""
    overrides = tolerance_overrides(result)
    if not overrides:
        return ""
    reason = free_line(tolerance_reason(result.scenario.path)).rstrip(". ")
    return ("- **Tolerance set by this scenario**, " + "; ".join(f"{d}: {text}" for d, text in overrides)
            + (f". Why, in its file's words: {reason}." if reason else ". Its file gives no reason (a comment "
               "just above its tolerance table)."))


def section_markdown(section: Section) -> list[str]:
    """A section as the report shows it: folded, its table between the report's own text."""
    table = [] if section.table is None else [markdown_table(section.table), ""]
    return folded(section.title, [*section.above, *table, *section.below])


def scenario_markdown(result: ScenarioResult, diagnoses: Sequence[Diagnosis] = (),
                      *, plots: tuple[str, ...] = ()) -> str:
    """The report of one scenario; ``plots`` are the PNG file names written next to it."""
    s = result.scenario
    lines = [
        *header_lines(result, diagnoses), "",
        f"# {free_line(s.title)}", "",
        f"Scenario `{s.name}` ({free_line(display_path(s.path))}); source: {free_line(s.source) or '-'}.", "",
        f"{ENVIRONMENT}: {environment.environment_line()}.", "",
        verdict_line(result, bold=True), "",
        lead_paragraph(result, diagnoses), "",
    ]
    crashes = crash_lines(result)
    if crashes:
        lines += crashes + [""]
    if result.comparisons:
        lines += [markdown_table(pairs_table(result, gap=lambda c: explained_gap(result, c))), ""]
    if diagnoses:
        lines += [diagnosis_digest(d) for d in diagnoses] + [""]
    override = tolerance_override_line(result)
    if override:
        lines += [override, ""]
    if plots:
        lines += ["## How the difference grows", ""]
        lines += [f"![{name}]({name})" for name in plots] + [""]
    lines += folded(IN_FULL, [summary_paragraph(result, diagnoses), ""])
    for section in sections_of(result, diagnoses):
        lines += section_markdown(section)
    return "\n".join(lines)
