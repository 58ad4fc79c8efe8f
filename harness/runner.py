"""Run a scenario in every requested implementation and dtype, then compare every pair."""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Callable

from harness.adapters import FRAMEWORKS, run_framework
from harness.compare import Comparison, compare
from harness.lab_values import LabCheck, check_lab_values
from harness.plan import TrainingPlan, make_plan
from harness.scenario import DTYPES, Scenario
from harness.trajectory import Trajectory

Progress = Callable[[str], None]


@dataclass
class ScenarioResult:
    scenario: Scenario
    frameworks: tuple[str, ...]
    dtypes: tuple[str, ...]
    plans: dict[str, TrainingPlan] = field(default_factory=dict)
    runs: dict[tuple[str, str], Trajectory] = field(default_factory=dict)  # (framework, dtype) -> run
    comparisons: list[Comparison] = field(default_factory=list)
    lab_checks: list[LabCheck] = field(default_factory=list)  # the float64 reference against the lab

    @property
    def agree(self) -> bool:
        """Every compared pair agrees and no run crashed (skipped frameworks do not count)."""
        crashed = any(r.status == "crashed" for r in self.runs.values())
        return not crashed and all(c.agree for c in self.comparisons)

    @property
    def lab_ok(self) -> bool:
        return all(c.ok for c in self.lab_checks)

    def comparison(self, a: str, b: str, dtype: str) -> Comparison | None:
        for c in self.comparisons:
            if (c.a, c.b, c.dtype) == (a, b, dtype):
                return c
        return None


def run_scenario(
    scenario: Scenario,
    *,
    frameworks: tuple[str, ...] = FRAMEWORKS,
    dtypes: tuple[str, ...] = DTYPES,
    progress: Progress | None = None,
) -> ScenarioResult:
    result = ScenarioResult(scenario=scenario, frameworks=frameworks, dtypes=dtypes)
    for dtype in dtypes:
        plan = make_plan(scenario, dtype)
        result.plans[dtype] = plan
        for framework in frameworks:
            start = time.perf_counter()
            run = run_framework(framework, plan)
            result.runs[(framework, dtype)] = run
            if progress is not None:
                extra = f" ({run.message})" if run.message else ""
                progress(f"{scenario.name} x {framework} ({dtype}): {run.status}, "
                         f"{run.steps} steps, {time.perf_counter() - start:.1f} s{extra}")
        tol = scenario.tolerances[dtype]
        for a, b in itertools.combinations(frameworks, 2):
            ra, rb = result.runs[(a, dtype)], result.runs[(b, dtype)]
            if ra.ok and rb.ok:
                result.comparisons.append(compare(ra, rb, tol))
    reference = result.runs.get(("numpy", "float64"))
    if reference is not None and reference.ok:
        result.lab_checks = check_lab_values(reference, result.plans["float64"])
    return result
