"""What ``nn-parity run`` prints for one scenario: its title, the sections of
``harness.render.sections`` the terminal shows (their tables fitted to the terminal's width), the line
of each pair that fails, the verdict, the whole summary wrapped to the terminal, then the sections
shown last (the diagnosis, without its stage tables)."""
from __future__ import annotations

import textwrap
from typing import Sequence

from harness.judge.diagnosis import Diagnosis
from harness.judge.result import ScenarioResult
from harness.render.sections import Section, TerminalView, sections_of
from harness.render.sentences import summary_paragraph, verdict_line
from harness.render.terminal_tables import terminal_table, terminal_width

WRAP = 100  # the summary's widest line, on a wider terminal or in a file


def section_text(section: Section, view: TerminalView) -> str:
    """A section as the terminal shows it: its caption, then its table or its text."""
    parts = ["\n" if view.last else "", f"{view.caption}\n\n" if view.caption else "",
             "" if section.table is None else f"{terminal_table(section.table)}\n\n",
             "\n".join(view.text).rstrip() + "\n" if view.text else ""]
    return "".join(parts)


def terminal_report(result: ScenarioResult, diagnoses: Sequence[Diagnosis]) -> str:
    """The whole output of ``nn-parity run`` for one scenario (the diagnosis is the report's, word for
    word)."""
    s = result.scenario
    shown = [(section, section.terminal) for section in sections_of(result, diagnoses) if section.terminal is not None]
    summary = textwrap.fill(summary_paragraph(result, diagnoses), width=min(terminal_width() or WRAP, WRAP),
                            break_on_hyphens=False)
    return "".join([
        f"# {s.name}: {s.title}\n\n",
        *(section_text(section, view) for section, view in shown if not view.last),
        *(f"{c.describe_failure(s.name)}\n" for c in result.comparisons if not c.ok),
        f"{verdict_line(result)}\n",
        f"\n{summary}\n",
        *(section_text(section, view) for section, view in shown if view.last),
        "\n",
    ])
