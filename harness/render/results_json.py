"""The JSON form of a scenario run (``nn-parity run --json``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.render.files import display_path, json_safe, write_json
from harness.run.runner import ScenarioResult


def _list(arr: np.ndarray) -> list:
    return np.asarray(arr, dtype=np.float64).tolist()


def result_dict(result: ScenarioResult) -> dict:
    runs = []
    for (framework, dtype), run in result.runs.items():
        runs.append({
            "framework": framework, "dtype": dtype, "status": run.status, "message": run.message,
            "convention": run.convention, "steps": run.steps, "stopped_early_at": run.stopped_early_at,
            "first_nonfinite_step": run.first_nonfinite_step if run.ok else None,
            "seconds": run.seconds, "losses": _list(run.losses),
            "final_params": {k: _list(v) for k, v in run.final_params.items()} if run.ok else {},
            "accuracy": result.accuracy.get((framework, dtype), {}),
            **({"outputs": [_list(o) for o in run.outputs_final]} if run.ok and not result.scenario.trains else {}),
        })
    s = result.scenario
    return json_safe({
        "scenario": s.name, "title": s.title, "source": s.source, "file": display_path(s.path),
        "tolerances": {d: {"rtol": t.rtol, "atol": t.atol} for d, t in s.tolerances.items()},
        "runs": runs,
        "comparisons": [c.as_dict() for c in result.comparisons],
        "lab_checks": [c.as_dict() for c in result.lab_checks],
        "agree": result.agree,
    })


def write_result_json(result: ScenarioResult, path: str | Path) -> None:
    write_json(path, result_dict(result))


def write_json_many(results: list[ScenarioResult], path: str | Path) -> None:
    """A file with variants: ``{"scenarios": [one result each], "agree": ...}``."""
    payload = {"scenarios": [result_dict(r) for r in results], "agree": all(r.agree for r in results)}
    write_json(path, payload)
