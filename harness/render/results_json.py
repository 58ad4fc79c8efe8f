"""The JSON form of a scenario run (``nn-parity run --json``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.judge.diagnosis import Diagnosis
from harness.render.files import display_path, json_safe, write_json
from harness.run.runner import ScenarioResult


def _list(arr: np.ndarray) -> list[Any]:
    return list(np.asarray(arr, dtype=np.float64).tolist())


def diagnosis_dict(d: Diagnosis) -> dict[str, Any]:
    """A pair's diagnosis: ``step`` (the first divergent step, or a drift's closest), ``stage`` (where
    within it the difference shows), ``suspect`` (the odd one out, or None), ``cause`` (None when no
    cause is confirmed) and ``confirmed_by`` (the control run that confirmed it)."""
    return {
        "drift": d.kind == "drift", "step": d.step, "quantity": d.quantity, "stage": d.stage,
        "suspect": None if d.suspect is None else d.suspect.label,
        "suspect_reason": None if d.suspect is None else d.suspect.reason,
        "cause": None if d.cause is None else d.cause.name,
        "confirmed_by": None if d.confirmed_by is None else d.confirmed_by.control.description,
    }


def result_dict(result: ScenarioResult, *, diagnoses: Sequence[Diagnosis]) -> dict[str, Any]:
    """``diagnoses``: ``diagnose(result)``; a comparison without one (it agrees and does not drift)
    has ``"diagnosis": null``."""
    by_pair = {id(d.comparison): d for d in diagnoses}
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
    comparisons = []
    for c in result.comparisons:
        d = by_pair.get(id(c))
        comparisons.append({**c.as_dict(), "diagnosis": None if d is None else diagnosis_dict(d)})
    s = result.scenario
    return dict(json_safe({
        "scenario": s.name, "title": s.title, "source": s.source, "file": display_path(s.path),
        "tolerances": {d: {"rtol": t.rtol, "atol": t.atol} for d, t in s.tolerances.items()},
        "runs": runs,
        "comparisons": comparisons,
        "lab_checks": [c.as_dict() for c in result.lab_checks],
        "state": result.state,
        "agree": result.agree,
        "ok": result.ok,
    }))


def write_result_json(result: ScenarioResult, path: str | Path, *, diagnoses: Sequence[Diagnosis]) -> None:
    write_json(path, result_dict(result, diagnoses=diagnoses))


def write_json_many(results: Sequence[tuple[ScenarioResult, Sequence[Diagnosis]]], path: str | Path) -> None:
    """A file with variants: ``{"scenarios": [one result each], "agree": ..., "ok": ...}`` (``ok`` over
    all of them)."""
    payload = {"scenarios": [result_dict(r, diagnoses=d) for r, d in results],
               "agree": all(r.agree for r, _ in results), "ok": all(r.ok for r, _ in results)}
    write_json(path, payload)
