"""Timing of the adapters (``nn-parity bench``).

Each adapter is run once untimed (imports, graph tracing), then ``repeat``
times; the best wall time is kept, so ratios compare steady-state speed.
The Keras ``model.fit`` baseline is the naive loop the labs use.
"""
from __future__ import annotations

import time
from typing import Callable

from harness.run.adapters import adapter
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
    base = best.get("numpy")
    return [{"framework": f, "dtype": dtype, "seconds": s, "ratio_to_numpy": None if base is None else s / base}
            for f, s in best.items()]


def time_fit_baseline(scenario: Scenario, *, dtype: str) -> float:
    """``model.compile(optimizer, loss); model.fit(X, y, epochs=E, batch_size=B, shuffle=False)``."""
    from harness.run.adapters.keras_tf import build_model, build_optimizer, floatx, import_keras, set_params

    _, keras = import_keras()
    plan = make_plan(scenario, dtype)
    tr = scenario.training
    with floatx(keras, dtype):
        model, layers = build_model(keras, scenario, dtype)
        set_params(layers, plan.initial_params)
        optimizer, _ = build_optimizer(keras, tr.optimizer)
        model.compile(optimizer=optimizer, loss=tr.loss if tr.loss == "mse" else tr.loss)
        batch = plan.X.shape[0] if tr.batch_size is None else tr.batch_size
        start = time.perf_counter()
        model.fit(plan.X, plan.y, epochs=tr.epochs, batch_size=batch, shuffle=False, verbose=0)
        return time.perf_counter() - start
