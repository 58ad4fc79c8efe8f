"""One ordered list of sections (``harness.render.sections.SECTIONS``) is what both the markdown report
and ``nn-parity run``'s terminal output show below their openings: each section's title in the report
in that order, each terminal-visible section's caption and table on the terminal in that order (the
diagnosis last), report-only sections nowhere on the terminal; and a section added to the list shows
in both, with nothing else to change. Checked on real runs of catalogue scenarios."""
from __future__ import annotations

import pandas as pd
import pytest

import harness.render.sections
from harness.pipeline import diagnose
from harness.render.scenario_report import IN_FULL, scenario_markdown
from harness.render.sections import SECTIONS, Section, TerminalView, sections_of
from harness.render.terminal_report import terminal_report
from harness.render.terminal_tables import terminal_table


def _positions(text: str, parts: list[str]) -> list[int]:
    """Where each part first appears in ``text`` after the one before it (-1: missing or out of order)."""
    found, start = [], 0
    for part in parts:
        at = text.find(part, start)
        found.append(at)
        start = max(at, start) + 1
    return found


@pytest.mark.parametrize("catalogue_result", ["sigmoid-exponential-adam", "xor-perceptron"], indirect=True,
                         scope="session")
def test_the_report_and_the_terminal_show_the_same_sections_in_the_same_order(catalogue_result, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # tables whole, as in a file
    result = catalogue_result
    diagnoses = diagnose(result)
    made = sections_of(result, diagnoses)
    md, out = scenario_markdown(result, diagnoses), terminal_report(result, diagnoses)

    folded_titles = [line[len("<summary>"):-len("</summary>")] for line in md.split(f"## {IN_FULL}")[1].splitlines()
                     if line.startswith("<summary>")]
    top_level = [title for title in folded_titles if not any(d.comparison.pair in title for d in diagnoses)]
    assert top_level == [s.title for s in made]

    shown = [s for s in made if s.terminal is not None and not s.terminal.last] + \
            [s for s in made if s.terminal is not None and s.terminal.last]
    parts = [part for s in shown for part in (
        ([s.terminal.caption] if s.terminal and s.terminal.caption else [])
        + ([terminal_table(s.table)] if s.table is not None else []))]
    assert -1 not in _positions(out, parts), "a terminal section is missing or out of order"
    assert out.index("Verdict: ") > out.index(terminal_table(made[0].table))  # tables, then the verdict
    if diagnoses:
        assert out.index("## Divergence diagnosis") > out.index("Verdict: ")  # the diagnosis last
    report_only = [s for s in made if s.terminal is None]
    assert [s.title for s in report_only] == ["Environment"]
    assert all(line not in out for s in report_only for line in s.above if line.startswith("- "))


@pytest.mark.parametrize("catalogue_result", ["softmax-classifier"], indirect=True, scope="session")
def test_a_section_added_to_the_list_shows_in_the_report_and_on_the_terminal(catalogue_result, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    table = pd.DataFrame([{"pair": "numpy-keras", "added": "a number only this section shows: 4.2e+01"}])

    def added(_result, _diagnoses) -> list[Section]:
        return [Section("An added section", table, above=("Words for the report only.", ""),
                        terminal=TerminalView(caption="An added section, on the terminal:"))]

    monkeypatch.setattr(harness.render.sections, "SECTIONS", (*SECTIONS[:2], added, *SECTIONS[2:]))
    result = catalogue_result
    md, out = scenario_markdown(result, []), terminal_report(result, [])
    assert "<summary>An added section</summary>" in md and "Words for the report only." in md
    assert md.index("<summary>Agreement, step by step</summary>") < md.index("<summary>An added section</summary>") \
        < md.index("<summary>Final parameters (float64)</summary>")
    assert "An added section, on the terminal:\n\n" + terminal_table(table) in out
    assert "Words for the report only." not in out
    assert out.index(terminal_table(table)) < out.index("Final parameters (float64):")
