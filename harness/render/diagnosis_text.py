"""A pair's diagnosis in words: its heading, its block (first divergence, localisation, suspect, the
cause and what confirmed it, each part of a bundled convention difference, the other control runs,
the traced stages), and the one-line digest above the report's fold. The report folds each block;
``nn-parity run`` prints them without the stage tables."""
from __future__ import annotations

from typing import Sequence

from harness.judge.compare import AGREE, DISAGREE, EXPLAINED
from harness.judge.controls import ControlRun
from harness.judge.diagnosis import Diagnosis
from harness.judge.localisation import DRIFT_FRACTION, r_floor
from harness.render.measures import fraction_text
from harness.render.tables import localisation_table, markdown_table

# A diagnosis heading's words for the pair's state (a drift is a pair that agrees: "agrees, drifts").
HEADING_STATE = {AGREE: "agrees", EXPLAINED: EXPLAINED, DISAGREE: "disagrees"}


def heading_state(d: Diagnosis) -> str:
    """``disagrees``, ``differ, explained`` or ``agrees, drifts``: never a word its state contradicts."""
    words = HEADING_STATE[d.comparison.state]
    return f"{words}, drifts" if d.kind == "drift" else words


def diagnosis_heading(d: Diagnosis) -> str:
    c = d.comparison
    return f"{c.pair} ({c.dtype}, {heading_state(d)}): {d.cause_name}"


def diagnosis_block(d: Diagnosis, *, stage_tables: bool = True) -> list[str]:
    """The lines under a pair's heading (``stage_tables=False``: without the stage-by-stage table)."""
    c, m = d.comparison, d.comparison.mismatch
    lines = []
    if d.kind == "drift":
        lines.append(f"- Drift: the pair agrees, but `{d.quantity}` uses {fraction_text(d.fraction)} at "
                     f"step {d.step} (diagnosed when it uses >= {DRIFT_FRACTION:g} of it).")
    elif m is not None:
        lines.append(f"- First divergence: step {m.step}, `{m.quantity}`{list(m.index) if m.index else ''}: "
                     f"{c.a} {m.a!r}, {c.b} {m.b!r}, |a - b| {m.diff:.3e} > allowed {m.allowed:.3e} "
                     f"(last step that agreed: {'none' if m.step == 0 else m.step - 1}).")
    elif c.note:
        lines.append(f"- First divergence: step {c.first_divergent_step} ({c.note}).")
    if c.faults:
        lines.append(f"- Not a {c.dtype} pair: {'; '.join(c.faults)} (so it disagrees"
                     + (", though its values are within the tolerance)." if c.agree else ")."))
    lines.append(f"- Localisation: {d.localisation.describe()}.")
    if d.suspect is not None:
        lines.append(f"- Suspect: {d.suspect.describe()}.")
    if d.cause is not None and d.confirmed_by is not None:
        how = "the control run" if isinstance(d.confirmed_by, ControlRun) else "measurement:"
        lines.append(f"- Cause: **{d.cause.name}**: {d.cause.explanation}. Confirmed by {how} "
                     f"{d.confirmed_by.describe()}.")
    else:
        lines.append("- Cause: no known cause confirmed (a cause is named only when its control run agrees).")
    parts = getattr(d, "contributions", [])  # a bundled convention difference, one part at a time
    if parts:
        lines += ["- Each part of the difference alone:"] + [f"  - {p.describe()}" for p in parts]
    others = [r for r in d.controls if r is not d.confirmed_by]
    if others:
        lines += ["- Other control runs:"] + [f"  - {r.describe()}" for r in others]
    lines.append("")
    if stage_tables and d.localisation.stages:
        lines += [f"Step {d.localisation.step}, traced in both implementations (each replays its own run "
                  "up to the step); d is the largest relative difference of the stage.", "",
                  markdown_table(localisation_table(d.localisation.stages, floor=r_floor(d.comparison.dtype))), ""]
    return lines


def diagnosis_lines(diagnoses: Sequence[Diagnosis], *, stage_tables: bool = True) -> list[str]:
    """Each pair's heading (``### ...``) and block, one after the other."""
    return [line for d in diagnoses
            for line in [f"### {diagnosis_heading(d)}", "", *diagnosis_block(d, stage_tables=stage_tables)]]


def diagnosis_digest(d: Diagnosis) -> str:
    """One line per diagnosed pair, above the fold: state, step, stage, cause."""
    c = d.comparison
    where = f"step {d.step}" + (f" at `{d.stage}`" if d.stage else "")
    what = (f"comes within {fraction_text(d.fraction)} at {where}" if d.kind == "drift"
            else f"{'; '.join(c.faults)}, from {where}" if c.faults and c.agree
            else f"first beyond the tolerance at {where}")
    return f"- {c.pair} ({c.dtype}, {heading_state(d)}): {what}; cause: {d.cause_name}."
