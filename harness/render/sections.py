"""The sections below a scenario's opening, as data, in one ordered list (``SECTIONS``) that both the
markdown report (``harness.render.scenario_report``: each folded in ``<details>``) and the terminal
output of ``nn-parity run`` (``harness.render.terminal_report``: its tables fitted to the screen)
walk, each rendering them its own way. A section is a title, a table, the report's text around the
table, and how the terminal shows it (``TerminalView``; None: the report only). Adding a section is
one builder in ``SECTIONS``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Sequence

import pandas as pd

from harness.judge.causes.registry import CAUSES
from harness.judge.compare import ACCOUNTED, AGREE, DISAGREE, EXPLAINED, Comparison
from harness.judge.diagnosis import Diagnosis
from harness.judge.localisation import DRIFT_FRACTION, R_THRESHOLD, growth
from harness.judge.result import ScenarioResult
from harness.render.details import folded
from harness.render.diagnosis_text import diagnosis_block, diagnosis_heading, diagnosis_lines
from harness.render.environment_text import environment_lines
from harness.render.free_text import free_text
from harness.render.measures import fraction_text
from harness.render.tables import (
    accuracy_table,
    agreement_table,
    final_params_table,
    lab_table,
    outputs_table,
    runs_table,
)
from harness.spec.data import describe_data
from harness.spec.tolerance import DEFAULT_TOLERANCES


@dataclass(frozen=True)
class TerminalView:
    """How ``nn-parity run`` shows a section: ``caption`` on the line above it (None: nothing), then
    the section's table, or ``text`` (lines) in its place; ``last``: after the verdict and the whole
    summary, as the closing part of the output, rather than among the tables before them."""

    caption: str | None = None
    text: tuple[str, ...] = ()
    last: bool = False


@dataclass(frozen=True)
class Section:
    """One section: ``title`` (the report's heading), ``table`` (shown by both), the report's own
    markdown ``above`` and ``below`` the table, and ``terminal`` (None: the report only)."""

    title: str
    table: pd.DataFrame | None = None
    above: tuple[str, ...] = ()
    below: tuple[str, ...] = ()
    terminal: TerminalView | None = TerminalView()


# A section builder: the sections it makes of a scenario's result and diagnoses ([] when it has nothing
# to show). Every builder takes both, whether or not it reads the diagnoses.
SectionBuilder = Callable[[ScenarioResult, Sequence[Diagnosis]], list[Section]]


def setup_section(result: ScenarioResult, _diagnoses: Sequence[Diagnosis]) -> list[Section]:
    """The scenario's description, model, data, training and tolerances, then the runs (the terminal:
    the runs table alone)."""
    s = result.scenario
    layers = ", ".join(
        f"{layer.units} {layer.activation}{'' if layer.use_bias else ' (no bias)'}" for layer in s.layers)
    setup = [
        *([free_text(s.description.strip()), ""] if s.description.strip() else []),
        f"- Model: {s.input_dim} inputs -> {layers}; parameters: "
        + ", ".join(f"`{n}` {shape}" for n, shape in s.param_shapes().items()),
        f"- Data: {describe_data(s.data)}",
        training_line(result),
        "- Tolerances (|a - b| <= atol + rtol * max(|a|, |b|)"
        + (" + ulps * eps * M, M the quantity's largest |value| so far" if any(
            t.mtol for d, t in s.tolerances.items() if d in result.dtypes) else "")
        + ", every step, loss and every parameter): "
        + "; ".join(f"{d}: {t.describe()}" for d, t in s.tolerances.items() if d in result.dtypes)
        + (f" ({'; '.join(d for d, _ in tolerance_overrides(result))}: set by the scenario, its reason above)"
           if tolerance_overrides(result) else ""),
    ]
    for fw in result.frameworks if s.trains else ():
        changes = _setting_changes(s, result.scenario_for(fw))
        if changes:
            setup.append(f"- Variant: {fw} runs this scenario with " + ", ".join(changes))
    setup += ["", "### Runs", ""]
    return [Section("Set-up", runs_table(result), above=tuple(setup))]


def agreement_section(result: ScenarioResult, _diagnoses: Sequence[Diagnosis]) -> list[Section]:
    """Every pair's differences, quantity by quantity; the report adds why each pair that does not agree
    fails or is explained, and how each pair's difference grows."""
    if not result.comparisons:
        return []
    failures = [f"- {c.describe_failure(result.scenario.name)}" for c in result.comparisons if not c.ok]
    failures += [f"- {c.a} vs {c.b} ({c.dtype}): {EXPLAINED}, by {c.expected_difference}: {ACCOUNTED} "
                 f"(max |a - b| {c.max_abs:.2e})." for c in result.comparisons if c.state == EXPLAINED]
    below = failures + ([""] if failures else [])
    growths = growth_lines(result)
    if growths:
        below += ["Per step (the plots' numbers):", "", *growths, ""]
    return [Section("Agreement, step by step", agreement_table(result), below=tuple(below))]


def diagnosis_section(result: ScenarioResult, diagnoses: Sequence[Diagnosis]) -> list[Section]:
    """The diagnosis of each pair that does not agree or drifts (the report folds each pair's block; the
    terminal leaves out the stage tables and shows the diagnosis last)."""
    if not diagnoses:
        return []
    intro = (f"Pairs that {DISAGREE}, that {EXPLAINED}, or that {AGREE} but use at least "
             f"{DRIFT_FRACTION:g} of their tolerance at some step (drift). "
             f"Localisation threshold: a stage introduces the difference when R > {R_THRESHOLD:g}. "
             "Causes tried, in order, each confirmed by its control run or its measurement: "
             + "; ".join(f"{c.name}" for c in CAUSES) + ".")
    blocks = [line for d in diagnoses for line in folded(diagnosis_heading(d), diagnosis_block(d), level=3)]
    title = "Divergence diagnosis"
    return [Section(title, above=(intro, "", *blocks),
                    terminal=TerminalView(caption=f"## {title}", last=True,
                                          text=tuple(diagnosis_lines(diagnoses, stage_tables=False))))]


def final_values_sections(result: ScenarioResult, _diagnoses: Sequence[Diagnosis]) -> list[Section]:
    """Per dtype, every implementation's final parameters side by side (forward-only: the outputs of the
    last layer), with the lab's values."""
    sections = []
    for dtype in result.dtypes:
        trains = result.scenario.trains
        table = final_params_table(result, dtype) if trains else outputs_table(result, dtype)
        if table is not None:
            title = f"{'Final parameters' if trains else 'Outputs of the last layer'} ({dtype})"
            sections.append(Section(title, table, terminal=TerminalView(caption=f"{title}:")))
    return sections


def accuracy_section(result: ScenarioResult, _diagnoses: Sequence[Diagnosis]) -> list[Section]:
    """How each run's final parameters classify the training data and the held-out splits."""
    table = accuracy_table(result)
    if table is None:
        return []
    return [Section("Accuracy", table, above=(
        "Each run's final parameters classify the training data and every held-out split (class 1 when "
        "p > 0.5 for one sigmoid output, else the argmax), scored by the reference's forward pass.", ""),
        terminal=TerminalView(caption="Accuracy of the final parameters:"))]


def lab_section(result: ScenarioResult, _diagnoses: Sequence[Diagnosis]) -> list[Section]:
    """Each number the lab printed against the reference run."""
    if not result.lab_checks:
        return []
    return [Section("The lab's printed values", lab_table(result), above=(
        "Each number the lab printed, against the reference run (float64 unless the row says otherwise).", ""),
        terminal=TerminalView(caption="The lab's printed values against the reference (float64 unless the row "
                                      "says otherwise):"))]


def environment_section(result: ScenarioResult, _diagnoses: Sequence[Diagnosis]) -> list[Section]:
    """The machine and the frameworks' set-up (the report only: ``run --json`` carries it)."""
    return [Section("Environment", above=(*environment_lines(result), ""), terminal=None)]


SECTIONS: tuple[SectionBuilder, ...] = (setup_section, agreement_section, diagnosis_section, final_values_sections,
                                        accuracy_section, lab_section, environment_section)


def sections_of(result: ScenarioResult, diagnoses: Sequence[Diagnosis]) -> list[Section]:
    """Every section of this scenario, in ``SECTIONS`` order (a builder with nothing to show makes none)."""
    return [section for build in SECTIONS for section in build(result, diagnoses)]


# --- the set-up's and the agreement's lines --------------------------------------------

def tolerance_overrides(result: ScenarioResult) -> list[tuple[str, str]]:
    """The dtypes whose tolerance the scenario sets itself (its ``[tolerance]`` table), each with
    ``rtol 5e-05, atol 1e-07 ... instead of the default rtol 1e-05, ...``."""
    return [(d, f"{t.describe()} instead of the default {DEFAULT_TOLERANCES[d].describe()}")
            for d, t in result.scenario.tolerances.items()
            if d in result.dtypes and d in DEFAULT_TOLERANCES and t != DEFAULT_TOLERANCES[d]]


def training_line(result: ScenarioResult) -> str:
    tr = result.scenario.training
    if tr is None:
        return "- Training: none (a forward-only scenario: each implementation computes every layer's outputs)"
    batch = "full batch" if tr.batch_size is None else f"batches of {tr.batch_size} (last partial batch kept)"
    return (f"- Training: loss `{tr.loss}` (cross-entropy guard: {tr.clip}), optimizer `{tr.optimizer.name}` "
            f"lr {tr.optimizer.learning_rate:g}"
            + "".join(f", {k} {v}" for k, v in tr.optimizer.options.items())
            + f" (convention: {_conventions(result)}), {batch}, {tr.epochs} epochs, "
            + (f"shuffled each epoch (seed {tr.shuffle_seed})" if tr.shuffle else "no shuffling")
            + (f", early stop when |Δ batch loss| < {tr.early_stop_tol:g}" if tr.early_stop_tol is not None
               else ", no early stopping"))


def _setting_changes(base, side) -> list[str]:
    """What a side variant changes in the training set-up, as ``field value (instead of value)``."""
    changes = []
    pairs = [(f.name, getattr(base.training, f.name), getattr(side.training, f.name))
             for f in fields(base.training) if f.name != "optimizer"]
    pairs += [(f"optimizer {f.name}", getattr(base.training.optimizer, f.name),
               getattr(side.training.optimizer, f.name)) for f in fields(base.training.optimizer)]
    pairs += [(f"layer {i}", was, now) for i, (was, now) in enumerate(zip(base.layers, side.layers)) if was != now]
    for name, was, now in pairs:
        if was != now:
            changes.append(f"{name} {now!r} (instead of {was!r})")
    return changes


def _conventions(result: ScenarioResult) -> str:
    seen: dict[str, str] = {}
    for (fw, _), run in result.runs.items():
        if run.convention:
            seen.setdefault(fw, run.convention)
    return ", ".join(f"{fw} {conv}" for fw, conv in seen.items()) or "-"


def tolerance_text(c: Comparison) -> str:
    """The pair's tolerance as the judge describes it (``rtol 1e-05, atol 1e-07``, and any M term)."""
    return c.tolerance or f"rtol {c.rtol:g}, atol {c.atol:g}"


def growth_lines(result: ScenarioResult) -> list[str]:
    """Per pair, how its difference evolves; the fraction of the tolerance is named as such, and an
    explained pair's is said to be explained (it is judged through the reference)."""
    lines = []
    for c in result.comparisons:
        g = growth(c)
        if g is None:
            continue
        fraction = fraction_text(g.worst_used)
        judged = (f"{EXPLAINED}: judged through the reference"
                  if c.state == EXPLAINED else c.state)
        lines.append(f"- {c.pair} ({c.dtype}, {judged}): max |a - b| {g.first:.2e} at step 0, {g.last:.2e} at the "
                     f"last step, largest {g.worst:.2e} (step {g.worst_step}); |a - b| / allowed at worst "
                     f"{g.worst_used:.2g} ({fraction}: {tolerance_text(c)})")
    return lines
