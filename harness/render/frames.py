"""The comparisons of a run as a pandas DataFrame (``harness.testing.comparisons_frame``) and as
CSV (``nn-parity run --csv``): one row per compared pair and dtype, the numbers the agreement
table shows, unformatted."""
from __future__ import annotations

from typing import Any

import pandas as pd

from harness.judge.result import ScenarioResult

COLUMNS = ("scenario", "a", "b", "dtype", "state", "verdict", "max_abs", "max_rel", "first_divergent_step",
           "quantity", "step", "index", "steps_a", "steps_b", "tolerance", "rtol", "atol", "expected_difference",
           "ok")


def comparisons_frame(results: ScenarioResult | list[ScenarioResult]) -> pd.DataFrame:
    """One row per comparison: the scenario, the pair (``a``, ``b``), ``dtype``, ``state`` (agree /
    differ, explained / disagree) and ``verdict``, the largest absolute and relative differences,
    the first divergent step and the first element beyond the tolerance (``quantity``, ``step``,
    ``index``), the step counts, the tolerance, what explains an explained difference, ``ok``."""
    rows: list[dict[str, Any]] = []
    for result in results if isinstance(results, list) else [results]:
        for c in result.comparisons:
            m = c.mismatch
            rows.append({"scenario": result.scenario.name, "a": c.a, "b": c.b, "dtype": c.dtype, "state": c.state,
                         "verdict": c.verdict, "max_abs": c.max_abs, "max_rel": c.max_rel,
                         "first_divergent_step": c.first_divergent_step,
                         "quantity": None if m is None else m.quantity, "step": None if m is None else m.step,
                         "index": None if m is None else str(list(m.index)), "steps_a": c.steps_a,
                         "steps_b": c.steps_b, "tolerance": c.tolerance, "rtol": c.rtol, "atol": c.atol,
                         "expected_difference": c.expected_difference, "ok": c.ok})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def comparisons_csv(results: list[ScenarioResult]) -> str:
    """``comparisons_frame`` as CSV (numbers as Python writes them: full precision, nan/inf as words)."""
    text: str = comparisons_frame(results).to_csv(index=False, lineterminator="\n")
    return text
