"""Timing of the adapters (``nn-parity bench``).

Each adapter is run once untimed (imports, graph tracing), then ``repeat``
times; the best wall time is kept, so ratios compare steady-state speed.
The ``model.fit`` baseline is the naive loop the labs use (Keras only).
"""
from __future__ import annotations

import time
from typing import Callable

from harness.run.adapters import REFERENCE, adapter
from harness.run.plan import make_plan
from harness.spec.scenario import Scenario


def time_runs(scenario: Scenario, *, frameworks: tuple[str, ...], dtype: str, repeat: int,
              progress: Callable[[str], None]) -> list[dict]:
    plan = make_plan(scenario, dtype)
    best: dict[str, float] = {}
    for framework in frameworks:
        run = adapter(framework).run
        run(plan)  # warm-up: imports and tracing are not the loop's cost
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            run(plan)
            times.append(time.perf_counter() - start)
        best[framework] = min(times)
        progress(f"{scenario.name} x {framework} ({dtype}): best of {repeat}: {best[framework]:.3f} s")
    base = best.get(REFERENCE)
    return [{"framework": f, "dtype": dtype, "seconds": s, "ratio_to_numpy": None if base is None else s / base}
            for f, s in best.items()]


def time_fit_baselines(scenario: Scenario, *, frameworks: tuple[str, ...], dtype: str) -> dict[str, float]:
    """Seconds of each framework's own high-level training loop (Keras' ``model.fit``), for
    the frameworks that have one."""
    plan = make_plan(scenario, dtype)
    seconds = {fw: adapter(fw).fit_baseline_seconds(plan) for fw in frameworks}
    return {fw: s for fw, s in seconds.items() if s is not None}
