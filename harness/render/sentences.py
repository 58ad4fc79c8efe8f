"""A scenario told in sentences: its verdict line, the whole summary (``summary_paragraph``, for a
student who reads nothing else: the report's folded summary, the terminal and the JSON), the lead
(``lead_paragraph``: at most three short sentences opening the report) and the index's one line
(``index_line``). Every number they quote comes from ``harness.render.measures``.
"""
from __future__ import annotations

from typing import Sequence

from harness.judge.causes.evidence import Finding
from harness.judge.compare import ACCOUNTED, AGREE, DISAGREE, EXPLAINED, STATES
from harness.judge.diagnosis import NO_CAUSE, Diagnosis
from harness.judge.result import ScenarioResult
from harness.render.measures import DIVERGED, decisive, final_gap, fraction_text, peak, worst_pair


def verdict(result: ScenarioResult) -> str:
    """The scenario's verdict: ``CRASHED: ...`` when a run crashed, ``nothing compared``, else its
    state (``ScenarioResult.state``: the worst state of its pairs, ``disagree`` when something else
    fails it), in the pairs' own words (``agree``, ``differ, explained``, ``disagree``)."""
    crashed = [f"{fw} ({dt})" for (fw, dt), r in result.runs.items() if r.status == "crashed"]
    if crashed:
        return "CRASHED: " + ", ".join(crashed)
    if result.plan_faults:  # every implementation trained on it: their agreement says nothing
        return "HARNESS FAULT: " + "; ".join(result.plan_faults)
    if not result.comparisons and not result.faults:
        return "nothing compared"
    return result.state


def pair_counts(result: ScenarioResult) -> str:
    """How many pairs are in each state: ``pairs: 6 agree, 2 differ, explained, 0 disagree``."""
    return "pairs: " + ", ".join(f"{sum(c.state == s for c in result.comparisons)} {s}" for s in STATES)


def verdict_line(result: ScenarioResult, *, bold: bool = False) -> str:
    """``Verdict: <verdict> (pairs: ...)``, as the terminal prints it (the report: ``bold``), and
    ``: <why>`` for what else fails the result (``ScenarioResult.faults``)."""
    head = f"**Verdict: {verdict(result)}**" if bold else f"Verdict: {verdict(result)}"
    return (head + (f" ({pair_counts(result)})" if result.comparisons else "")
            + (f": {'; '.join(result.faults)}" if result.faults else ""))


def _listed(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _nonfinite_sentence(result: ScenarioResult) -> str:
    parts = []
    for dtype in result.dtypes:
        steps = {fw: result.runs[(fw, dtype)].first_nonfinite_step for fw in result.frameworks
                 if result.runs[(fw, dtype)].ok}
        hits = {fw: s for fw, s in steps.items() if s is not None}
        if not hits:
            continue
        if len(set(hits.values())) == 1 and len(hits) == len(steps):
            parts.append(f"every run reaches inf/nan at step {next(iter(hits.values()))} in {dtype}")
        else:
            parts.append(f"in {dtype} " + ", ".join(
                f"{fw} reaches inf/nan at step {s}" if s is not None else f"{fw} stays finite"
                for fw, s in steps.items()))
    if not parts:
        return ""
    return ("The training blows up: " + "; ".join(parts)
            + " (nan against nan and the same inf count as equal, so runs that overflow together agree).")


def _lab_sentence(result: ScenarioResult, *, lead: bool = False) -> str:
    """What the lab's printed values say: in full, or (``lead``) short, for the report's opening."""
    checks = result.lab_checks
    if not checks:
        return "The lab prints no value to check." if lead else "The lab prints no value for this scenario to check."
    missed = [c.label for c in checks if not c.ok]
    if not missed:
        every = {1: "the value", 2: "both values"}.get(len(checks), f"all {len(checks)} values")
        return f"The reference reproduces {every} the lab printed{'' if lead else ', to the printed digits'}."
    listed = _first_few(missed) if lead else "; ".join(missed)
    return f"The reference misses {len(missed)} of the {len(checks)} values the lab printed: {listed}."


def _runs_sentence(result: ScenarioResult) -> str:
    s = result.scenario
    labels = list(result.frameworks)
    references = [x for x in labels if x.startswith("numpy[")]
    words = [x for x in labels if x not in references and x != "numpy"]
    if references:
        words.insert(0, f"The NumPy reference (as {_listed(references)}, one run per optimizer convention)")
    elif "numpy" in labels:
        words.insert(0, "The NumPy reference (numpy)")
    steps = sorted({r.steps for r in result.runs.values() if r.ok})
    if not s.trains:
        what = "computed the forward pass (every layer's outputs) on the same inputs"
    else:
        span = f"{steps[-1]} training steps" if len(steps) == 1 else f"up to {steps[-1] if steps else 0} steps"
        what = f"trained the same network from the same weights on the same batches for {span}"
    compared = ("the loss, every parameter and every layer's outputs, at every step" if s.trains
                else "every layer's outputs")
    text = (f"{_listed(words)} each {what}, in {_listed(result.dtypes)}; every pair of runs was compared on "
            f"{compared}.")
    return text[0].upper() + text[1:]


def _state_sentence(result: ScenarioResult) -> str:
    cs = result.comparisons
    if not cs:
        return "Nothing could be compared."
    counts = {s: [c for c in cs if c.state == s] for s in STATES}
    when = " at every step" if result.scenario.trains else ""
    if len(counts[AGREE]) == len(cs):
        return f"{'Both' if len(cs) == 2 else 'The' if len(cs) == 1 else f'All {len(cs)}'} pair" \
               f"{'' if len(cs) == 1 else 's'} agree within the tolerance{when}."
    parts = []
    if counts[AGREE]:
        parts.append(f"{len(counts[AGREE])} agree within the tolerance{when}")
    if counts[EXPLAINED]:
        how = list(dict.fromkeys(d for c in counts[EXPLAINED] for d in c.differences))
        parts.append(f"{len(counts[EXPLAINED])} differ, explained by {'; '.join(how)}: {ACCOUNTED}")
    if counts[DISAGREE]:
        parts.append(f"{len(counts[DISAGREE])} disagree ("
                     + ", ".join(f"{c.pair} in {c.dtype} " + (f"from step {c.first_divergent_step}" if not c.faults
                                                              else f"({'; '.join(c.faults)})")
                                 for c in counts[DISAGREE]) + ")")
    head = "The one pair: " if len(cs) == 1 else f"Of the {len(cs)} pairs, "
    return head + "; ".join(parts) + "."


def _explained_sentence(result: ScenarioResult) -> str:
    """How big the explained gap gets, and whether it matters for the final weights."""
    explained = [c for c in result.comparisons if c.state == EXPLAINED]
    if not explained:
        return ""
    c = max(explained, key=lambda x: x.max_abs)
    p, gap = peak(c), final_gap(result, c)
    where = f"in `{p.quantity}`" + ("" if p.step is None else f" around step {p.step}")
    text = f"The explained gap peaks at {p.value:.2g} {where} ({c.pair}, {c.dtype})"
    if gap is not None and gap.diverged:
        text += f"; its two runs {DIVERGED}: their final parameters are inf/nan"
    elif gap is not None:
        text += (f", while the final weights differ by {gap.max_abs:.2g} (relative {gap.max_rel:.2g}): "
                 f"{gap.digits()}")
    return text + "."


def _closest_sentence(result: ScenarioResult) -> str:
    c = worst_pair(result)
    if c is None or c.closest is None:
        return ""
    agreeing = decisive(result)
    if all(x.max_abs == 0 and x.state == AGREE for x in agreeing):  # the pairs explained differ: not "every pair"
        which = ("Every pair" if len(agreeing) == len(result.comparisons) else
                 "The pair that agrees" if len(agreeing) == 1 else f"The {len(agreeing)} pairs that agree")
        return f"{which} computed identical numbers, bit for bit."
    step, quantity, fraction = c.closest
    if c.agree:  # (a pair with a dtype fault disagrees within the tolerance: its closest call)
        head = (f"The closest call is {c.pair} ({c.dtype}): `{quantity}` uses {fraction_text(fraction)} "
                f"(|a - b| / allowed, the quantity the verdict tests)" + (f" at step {step}" if c.step_max_abs.size
                                                                           else ""))
    else:
        m = c.mismatch
        head = (f"{c.pair} ({c.dtype}) first breaks the tolerance at step {c.first_divergent_step}"
                + (f" in `{m.quantity}` (|a - b| {m.diff:.2g} > allowed {m.allowed:.2g})" if m else f" ({c.note})")
                + f"; at worst it uses {fraction_text(fraction)}")
    p, gap = peak(c), final_gap(result, c)
    if p.value > 0:
        head += f"; its largest |a - b| is {p.value:.2g}, in `{p.quantity}`" + (
            "" if p.step is None else f" at step {p.step}")
    if gap is not None and c.state == DISAGREE:
        head += f"; the final weights differ by {gap.max_abs:.2g} (relative {gap.max_rel:.2g})"
    return head + "."


def _cause_sentence(diagnoses: Sequence[Diagnosis]) -> str:
    if not diagnoses:
        return ""
    groups: dict[str, list[str]] = {}
    for d in diagnoses:
        c = d.comparison
        what = f"{c.pair} ({c.dtype}{', which still agrees: a drift' if d.kind == 'drift' else ''})"
        groups.setdefault(d.cause_name, []).append(what)
    how = {d.cause_name: "a measurement" if isinstance(d.confirmed_by, Finding) else "a control run"
           for d in diagnoses}
    parts = []
    for cause, pairs in groups.items():
        if cause == NO_CAUSE:
            parts.append(f"no known cause is confirmed for {_listed(pairs)}")
        else:
            parts.append(f"{cause} for {_listed(pairs)}, confirmed by {how[cause]}")
    suspects = sorted({d.suspect.describe() for d in diagnoses if d.suspect is not None})
    text = "Cause: " + "; ".join(parts) + "."
    separated = list(dict.fromkeys(f"{p.part} ({p.dtype}, against {p.against}): loss up to {p.loss_gap:.2g}, "
                                   f"final parameters {p.params_gap:.2g}"
                                   for d in diagnoses for p in getattr(d, "contributions", [])))
    if separated:
        text += " Each part of the convention alone: " + "; ".join(separated) + "."
    return text + (" " + " ".join(s[0].upper() + s[1:] + "." for s in suspects) if suspects else "")


def _crash_sentence(result: ScenarioResult) -> str:
    crashed = [f"{fw} ({dt}: {r.message})" for (fw, dt), r in result.runs.items() if r.status == "crashed"]
    skipped = [f"{fw} ({dt}: {r.message})" for (fw, dt), r in result.runs.items() if r.status == "skipped"]
    text = "".join(f"Harness fault, {fault} (every implementation trained on it, so their agreement does not "
                   "count). " for fault in result.plan_faults)
    if crashed:
        text += f"Crashed: {'; '.join(crashed)}; the runs that worked are still compared. "
    if skipped:
        text += f"Skipped: {'; '.join(skipped)}. "
    return text.strip()


def summary_paragraph(result: ScenarioResult, diagnoses: Sequence[Diagnosis] = ()) -> str:
    """What was compared, the verdict, the largest difference (where and when), the cause and
    whether it matters for the final weights, and the lab's printed values: for a student who
    reads nothing else."""
    parts = [_runs_sentence(result), _crash_sentence(result), _state_sentence(result), _closest_sentence(result),
             _explained_sentence(result), _nonfinite_sentence(result), _cause_sentence(diagnoses),
             _lab_sentence(result)]
    return " ".join(p for p in parts if p)


# --- the lead: at most three short sentences above the pairs table ---------------------

LEAD_SENTENCES = 3
LEAD_WORDS = 60


def _first_few(items: Sequence[str], *, most: int = 2) -> str:
    items = list(items)
    return _listed(items) if len(items) <= most else f"{', '.join(items[:most])} and {len(items) - most} more"


def _lead_verdict(result: ScenarioResult) -> str:
    """The verdict in one sentence: the pairs counted by state, naming those that disagree."""
    crashed = [f"{fw} ({dt})" for (fw, dt), r in result.runs.items() if r.status == "crashed"]
    if result.plan_faults:
        return "Harness fault: the shared plan every implementation trained on is broken, so no agreement counts."
    cs = result.comparisons
    head = f"{_first_few(crashed)} crashed; " if crashed else ""
    if not cs:
        return head + "nothing could be compared." if crashed else "Nothing could be compared."
    counts = {s: [c for c in cs if c.state == s] for s in STATES}
    when = " at every step" if result.scenario.trains else ""
    if counts[DISAGREE]:
        which = _first_few([f"{c.pair} ({c.dtype}" + (f", from step {c.first_divergent_step})"
                                                      if c.first_divergent_step is not None else ")")
                            for c in counts[DISAGREE]])
        text = ("The one pair disagrees" if len(cs) == 1 else f"{len(counts[DISAGREE])} of {len(cs)} pairs disagree") \
            + f": {which}"
    elif counts[EXPLAINED]:
        text = (f"{len(counts[AGREE])} of {len(cs)} pairs agree within the tolerance{when}; "
                f"{len(counts[EXPLAINED])} differ, explained (by a known difference the reference accounts for)")
    else:
        text = ("The one pair agrees" if len(cs) == 1 else f"{'Both' if len(cs) == 2 else f'All {len(cs)}'} pairs "
                "agree") + f" within the tolerance{when}"
    if result.dtype_faults:
        text += f", but {result.dtype_faults[0]}"
    return head + (text if head else text[0].upper() + text[1:]) + "."


def _lead_cause(result: ScenarioResult, diagnoses: Sequence[Diagnosis]) -> str:
    """The one cause (or the causes, by name), what confirmed it, and the gap it accounts for; with no
    diagnosis, the steps where the runs blow up."""
    decided = [d for d in diagnoses if d.kind != "drift" and d.comparison.state != AGREE]
    names = list(dict.fromkeys(d.cause_name for d in decided))
    if names:
        named = [n for n in names if n != NO_CAUSE]
        how = sorted({"a measurement" if isinstance(d.confirmed_by, Finding) else "a control run"
                      for d in decided if d.cause_name != NO_CAUSE})
        text = (f"Cause{'s' if len(named) > 1 else ''}: {_listed(named)}, confirmed by {' and '.join(how)}"
                if named else "No known cause is confirmed")
        if NO_CAUSE in names and named:
            text += "; other pairs: no known cause confirmed"
        suspect = next((d.suspect.label for d in decided if d.suspect is not None and d.suspect.label), None)
        if suspect:
            text += f"; suspect: {suspect}"
        explained = [c for c in result.comparisons if c.state == EXPLAINED]
        if explained:
            c = max(explained, key=lambda x: x.max_abs)
            p, gap = peak(c), final_gap(result, c)
            if gap is not None and gap.diverged:
                text += f"; the explained pairs {DIVERGED}"
            else:
                text += f"; it accounts for a gap up to {p.value:.2g} in `{p.quantity}`" + (
                    "" if gap is None else f", {gap.max_abs:.2g} in the final weights")
        return text + "."
    blowups = sorted({(dt, r.first_nonfinite_step) for (_, dt), r in result.runs.items()
                      if r.ok and r.first_nonfinite_step is not None})
    if not blowups:
        return ""
    return ("The training blows up: inf/nan from step " + ", ".join(f"{s} ({dt})" for dt, s in blowups)
            + (", in every run alike." if _blow_up_together(result) else "."))


def _blow_up_together(result: ScenarioResult) -> bool:
    """Whether, in each dtype, every run that worked reaches inf/nan at the same step."""
    for dtype in result.dtypes:
        steps = {r.first_nonfinite_step for (_, dt), r in result.runs.items() if dt == dtype and r.ok}
        if len(steps) > 1:
            return False
    return True


def lead_paragraph(result: ScenarioResult, diagnoses: Sequence[Diagnosis] = ()) -> str:
    """A report's opening, for a student who reads nothing else: at most ``LEAD_SENTENCES`` short
    sentences (the verdict, the lab's printed values, the one cause and the gap it accounts for).
    The whole account is ``summary_paragraph``, below the fold."""
    sentences = (_lead_verdict(result), _lab_sentence(result, lead=True), _lead_cause(result, diagnoses))
    return " ".join(p for p in sentences if p)


def index_line(result: ScenarioResult, diagnoses: Sequence[Diagnosis] = ()) -> str:
    """The index's line (its own column has the worst difference): the state counts, the explained gap
    and how far apart it leaves the final weights, the causes, the first inf/nan steps."""
    cs = result.comparisons
    if not cs:
        return "nothing compared"
    counts = ", ".join(f"{n} {s}" for s in STATES if (n := sum(c.state == s for c in cs)))
    text = f"{len(cs)} pair{'' if len(cs) == 1 else 's'}: {counts}"
    explained = [x for x in cs if x.state == EXPLAINED]
    if explained:
        e = max(explained, key=lambda x: x.max_abs)
        gap = final_gap(result, e)
        text += (f"; explained pairs {DIVERGED}" if gap is not None and gap.diverged
                 else f"; explained gap up to {e.max_abs:.2g}" + (
                     "" if gap is None else f", final weights within {gap.max_abs:.2g}"))
    causes = sorted({d.cause_name for d in diagnoses if d.kind != "drift" and d.comparison.state != AGREE})
    if causes:
        text += "; cause: " + ", ".join(causes)
    blowups = sorted({(dt, r.first_nonfinite_step) for (_, dt), r in result.runs.items()
                      if r.ok and r.first_nonfinite_step is not None})
    if blowups:
        text += "; inf/nan from step " + ", ".join(f"{s} ({dt})" for dt, s in blowups)
    return text


