"""Run a scenario in every requested implementation and dtype, then compare every pair."""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

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
    sides: dict[str, Scenario] = field(default_factory=dict)  # framework -> the variant it ran instead

    def scenario_for(self, framework: str) -> Scenario:
        """The scenario one framework ran: its side variant, else the scenario itself."""
        return self.sides.get(framework, self.scenario)

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
    sides: Mapping[str, Scenario] | None = None,
) -> ScenarioResult:
    """``sides`` runs one framework on a variant of the scenario (e.g. made with
    ``dataclasses.replace``) with the same data, initial weights and batch order."""
    result = ScenarioResult(scenario=scenario, frameworks=frameworks, dtypes=dtypes, sides=dict(sides or {}))
    for dtype in dtypes:
        plan = make_plan(scenario, dtype)
        result.plans[dtype] = plan
        for framework in frameworks:
            start = time.perf_counter()
            run = run_framework(framework, side_plan(plan, result.scenario_for(framework)))
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


def side_plan(plan: TrainingPlan, scenario: Scenario) -> TrainingPlan:
    """The same data, initial weights and batch order, trained as ``scenario`` says."""
    return plan if scenario is plan.scenario else replace(plan, scenario=scenario)
