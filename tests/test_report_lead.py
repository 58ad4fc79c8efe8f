"""A report opens with at most three short sentences (the verdict, the lab's printed values, the one
cause and the gap it accounts for), then the pairs table, whose rows that differ, explained, show
that gap, never a fraction of a tolerance that does not apply to them (issue 22, item 9). Checked
on every catalogue scenario's real runs; the whole account stays in the report, folded."""
from __future__ import annotations

import re

import pytest

from harness.judge.compare import AGREE, DISAGREE, EXPLAINED
from harness.pipeline import diagnose, run_scenario
from harness.render.scenario_report import IN_FULL, scenario_markdown
from harness.render.sentences import LEAD_SENTENCES, LEAD_WORDS, lead_paragraph, summary_paragraph
from harness.render.tables import PAIRS_MEASURE
from harness.run.adapters import REFERENCE
from harness.spec.catalogue import catalogue_scenarios, resolve

NAMES = [s.name for s in catalogue_scenarios()]
GAP = re.compile(r"gap (\S+)(; final weights (\S+))?|both diverged \(nan\)")


def sentences(paragraph: str) -> list[str]:
    """Sentences end with ". " or a final "." (numbers such as 2.1e-08 hold no space after the dot)."""
    return [s for s in re.split(r"(?<=[.!?])\s+", paragraph.strip()) if s]


def pairs_rows(md: str) -> list[dict[str, str]]:
    """The pairs table above the fold, one dict per row."""
    block = [line for line in md.split("<details>")[0].splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in block[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in block[2:]]


@pytest.mark.parametrize("catalogue_result", NAMES, indirect=True, scope="session")
def test_every_report_opens_with_three_short_sentences_then_the_table(catalogue_result):
    result = catalogue_result
    diagnoses = diagnose(result)
    md = scenario_markdown(result, diagnoses)
    lines = md.splitlines()
    verdict = next(i for i, line in enumerate(lines) if line.startswith("**Verdict: "))
    lead = lines[verdict + 2]
    assert lead == lead_paragraph(result, diagnoses)
    assert len(sentences(lead)) <= LEAD_SENTENCES and len(lead.split()) <= LEAD_WORDS, lead
    assert lines[verdict + 3] == "" and lines[verdict + 4].startswith("| pair ")  # then the table
    # the verdict in words, never contradicted; the lab's printed values; the cause when one is named
    words = {AGREE: "agree within the tolerance", EXPLAINED: "differ, explained", DISAGREE: "disagree"}
    assert words[result.state] in sentences(lead)[0].replace("disagrees", "disagree"), lead
    if result.state != DISAGREE:
        assert "disagree" not in lead
    assert ("The lab prints no value to check." if not result.lab_checks
            else "The reference reproduces" if result.lab_ok else "The reference misses") in lead
    for d in diagnoses:
        if d.kind != "drift" and d.comparison.state != AGREE:
            assert d.cause_name in lead, (d.cause_name, lead)
    # the whole account is still in the report, folded below the plots
    assert f"<summary>{IN_FULL}</summary>" in md
    if "Every pair computed identical numbers" in md:
        assert all(c.max_abs == 0 for c in result.comparisons)
    assert "every pair of runs was compared on" in md.split(f"## {IN_FULL}")[1]


@pytest.mark.parametrize("catalogue_result", ["sigmoid-exponential-adam", "minibatch-momentum", "minibatch-nesterov"],
                         indirect=True, scope="session")
def test_explained_rows_show_the_gap_the_cause_accounts_for(catalogue_result):
    """Each row that differs, explained, shows its largest |a - b| and the final weights' difference
    (the gap its cause accounts for), where it peaks, and no fraction of the tolerance (which read
    1.3e+07 for Adam's epsilon placement); the rows judged by their tolerance keep |a - b| / allowed."""
    result = catalogue_result
    rows = pairs_rows(scenario_markdown(result, diagnose(result)))
    assert len(rows) == len(result.comparisons)
    explained = 0
    for c, row in zip(result.comparisons, rows):
        cell = row[PAIRS_MEASURE]
        assert "(explained)" not in cell and "x the tolerance" not in cell
        if c.state == EXPLAINED:
            explained += 1
            gap = GAP.fullmatch(cell)
            assert gap is not None and gap[1] is not None, cell
            assert float(gap[1]) == pytest.approx(c.max_abs, rel=0.05) and float(gap[3]) < c.max_abs, cell
            assert row["where"].endswith(f"step {int(c.step_max_abs.argmax())}"), row
        else:
            assert float(cell) == pytest.approx(c.closest[2], rel=0.05) and float(cell) <= 1, cell
    assert explained == 2


@pytest.mark.slow  # torch and Keras on torch start in their workers
def test_identical_numbers_are_claimed_only_for_the_pairs_that_computed_them() -> None:
    """sgd-worked-example with Keras on torch: its pairs in float64 differ, explained (Keras' dtype rule),
    the others agree. With every implementation, the summary said "Every pair computed identical
    numbers, bit for bit" beside "7 differ, explained" and their gap (reports/backends)."""
    result = run_scenario(resolve("sgd-worked-example"), frameworks=(REFERENCE, "torch", "keras@torch"))
    explained = [c for c in result.comparisons if c.state == EXPLAINED]
    agreeing = [c for c in result.comparisons if c.state == AGREE]
    assert explained and all(c.max_abs > 0 for c in explained)
    assert len(agreeing) + len(explained) == len(result.comparisons)
    summary = summary_paragraph(result, diagnose(result))
    assert "Every pair computed identical numbers" not in summary, summary
    identical = f"The {len(agreeing)} pairs that agree computed identical numbers, bit for bit."
    # whether they do is this machine's kernels' to say (float32's last bits): the sentence says so when they do
    assert (identical in summary) == all(c.max_abs == 0 for c in agreeing), summary
