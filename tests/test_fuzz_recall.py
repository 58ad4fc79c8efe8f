"""Recall of ``nn-parity fuzz``: with one of the project's planted defects active (planted as
tests/test_planted_defects.py plants it, keras and torch in this process), a campaign finds it, names
its carrier as the suspect, without the defect's curated scenario, and shrinks the finding to a
small file that re-runs to the same fingerprint.

Five defects of four kinds: the reference (the sigmoid's derivative taken as tanh's), the Keras
adapter (tanh built as Keras' sigmoid), torch's run loop (the last row of every partial batch
dropped), framework classes (``torch.optim.SGD.step`` stepping twice, ``Optimizer.zero_grad`` doing
nothing). The campaigns are float64 only and ``EXAMPLES`` long with a fixed seed (not the issue's
300 examples: keras and torch run in this process here, and five campaigns of 300 would take most of
an hour on the 2-core machine). Measured 2026-12-06 at a load average near 24, with a 270 s shrink
budget (``hunt`` run from a script, in this order): each found with its carrier and its measured
cause (12, 6, 5, 18 and 27 examples of 60), shrunk in 118, 173, 301, 132 and 144 s; four of the
five met every size criterion (the partial batch ran out of its shrink budget at 2 hidden layers
and 5 rows); each campaign with its shrink took 4 to 12 minutes at that load.

Shrink quality (issue 21's target: at least 80% of the shrunk files with at most 1 hidden layer, at
most 2 units per layer, at most 4 rows and at most the first divergent step + 1 steps) is asserted:
each shrink here is bounded by its candidate count alone (``SHRINK_CANDIDATES``; the seconds guard is
lifted, so the load of the machine cannot cut it), so the shrunk file is a function of the code, and
every defect of ``SMALL`` (four of the five: 80%) must meet every criterion; the partial batch's shrink
(``torch-partial-batch-short``: a partial batch needs rows beyond a full one) must re-run to its
fingerprint and be no larger than the example that first showed it, as every other. How long a
shrink takes is a measured figure (docs/fuzz.md), never an assertion. Marked ``campaign``: minutes
each, run by ``make test-campaigns`` (in CI), not by ``make test``.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.fuzz import campaign as campaign_module
from harness.fuzz.campaign import Campaign, Record
from harness.fuzz.oracle import FINDING, judge_example
from harness.pipeline import run_scenario
from harness.run.adapters.workers import inline
from harness.spec.scenario import Scenario
from tests.test_planted_defects import CASES_BY_ID, FRAMEWORKS

pytestmark = [pytest.mark.slow, pytest.mark.campaign]

EXAMPLES = 60
SEED = 1
DEFECTS = ("numpy-sigmoid-derivative", "keras-activation-swapped", "torch-partial-batch-short",
           "torch-sgd-step-twice", "torch-no-zero-grad")
SMALL = ("numpy-sigmoid-derivative", "keras-activation-swapped", "torch-sgd-step-twice", "torch-no-zero-grad")
UNBOUNDED_SECONDS = 1e9  # the shrink bounded by its candidate count only (module docstring)


def first_divergent_step(scenario: Scenario) -> int:
    """The earliest step at which a pair of the carrier's finding disagrees (float64)."""
    result = run_scenario(scenario, dtypes=("float64",))
    steps = [c.first_divergent_step for c in result.comparisons if c.state == "disagree"]
    return min((s for s in steps if s is not None), default=0)


def small(scenario: Scenario, divergent: int) -> dict[str, bool]:
    """The issue's shrink-quality criteria, each met or not."""
    return {
        "hidden layers <= 1": len(scenario.layers) - 1 <= 1,
        "units <= 2": all(layer.units <= 2 for layer in scenario.layers),
        "rows <= 4": scenario.data.X is not None and scenario.data.X.shape[0] <= 4,
        "steps <= first divergent step + 1": scenario.max_steps <= divergent + 1,
    }


def hunt(defect_id: str, out: Path) -> tuple[Record, float, dict[str, bool]]:
    """A campaign with the defect planted: the carrier's most frequent finding, shrunk; the shrink's
    seconds and the shrunk file's criteria."""
    defect, plant = CASES_BY_ID[defect_id]
    with inline(), pytest.MonkeyPatch.context() as mp:
        plant(mp)
        mp.setattr(campaign_module, "SHRINK_SECONDS", UNBOUNDED_SECONDS)
        campaign = Campaign(frameworks=FRAMEWORKS, dtypes=("float64",), max_examples=EXAMPLES, seed=SEED, out=out)
        campaign.search()
        carried = [r for r in campaign.records.values() if r.fingerprint.suspect == defect.suspect]
        assert carried, (defect_id, sorted(fp.text() for fp in campaign.records))
        record = max(carried, key=lambda r: (r.count, r.fingerprint))
        start = time.perf_counter()
        campaign.shrink(record)
        seconds = time.perf_counter() - start
        minimal = record.minimal
        outcome = judge_example(minimal, frameworks=FRAMEWORKS, dtypes=("float64",))
        assert outcome.kind == FINDING and record.fingerprint in outcome.fingerprints, (defect_id, outcome)
        return record, seconds, small(minimal.scenario(), first_divergent_step(minimal.scenario()))


@pytest.mark.parametrize("defect_id", DEFECTS)
def test_fuzz_finds_a_planted_defect_names_its_carrier_and_shrinks_it(defect_id: str, tmp_path: Path) -> None:
    """Recall, one campaign per defect (so pytest-xdist spreads them): found, its carrier the
    suspect, shrunk to a file that re-runs to the same fingerprint, no larger than the example that
    first showed it, and, for the defects of ``SMALL``, meeting every criterion of the issue's
    shrink quality (module docstring)."""
    record, seconds, criteria = hunt(defect_id, tmp_path / defect_id)
    print(f"{defect_id}: {record.fingerprint.text()}, {record.count} of {EXAMPLES}, shrunk in {seconds:.0f} s, "
          f"{criteria}")
    assert record.fingerprint.suspect == CASES_BY_ID[defect_id][0].suspect
    first, minimal = record.exemplar.scenario(), record.minimal.scenario()
    assert minimal.max_steps <= first.max_steps and len(minimal.layers) <= len(first.layers), criteria
    if defect_id in SMALL:
        assert record.shrunk is not None and all(criteria.values()), criteria
