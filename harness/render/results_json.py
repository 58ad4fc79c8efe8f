"""The JSON form of a scenario run (``nn-parity run --json``): the same states, summary and worst pair
as the report (``harness.render.sentences``, ``harness.render.measures``), the environment it was
made in (``harness.run.environment``), and no path of this machine in any string."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.judge.diagnosis import Diagnosis
from harness.judge.result import ScenarioResult
from harness.render.files import display_path, json_safe, without_machine_paths, write_json
from harness.render.measures import used, worst_pair
from harness.render.sentences import summary_paragraph
from harness.run import environment


def _list(arr: np.ndarray) -> list[Any]:
    return list(np.asarray(arr, dtype=np.float64).tolist())


def diagnosis_dict(d: Diagnosis) -> dict[str, Any]:
    """A pair's diagnosis: ``step`` (the first divergent step, or a drift's closest), ``stage`` (where
    within it the difference shows), ``suspect`` (the odd one out, or None), ``cause`` (None when no
    cause is confirmed) and ``confirmed_by`` (the control run that confirmed it)."""
    return {
        "state": d.comparison.state, "drift": d.kind == "drift", "step": d.step, "quantity": d.quantity,
        "stage": d.stage,
        "suspect": None if d.suspect is None else d.suspect.label,
        "suspect_reason": None if d.suspect is None else d.suspect.reason,
        "cause": None if d.cause is None else d.cause.name,
        "confirmed_by": None if d.confirmed_by is None else d.confirmed_by.summary,
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
            "seconds": run.seconds, "losses": _list(run.losses), "narrowed_ops": run.narrowed_ops,
            "final_params": {k: _list(v) for k, v in run.final_params.items()} if run.ok else {},
            "accuracy": result.accuracy.get((framework, dtype), {}),
            **({"outputs": [_list(o) for o in run.outputs_final]} if run.ok and not result.scenario.trains else {}),
        })
    comparisons = []
    for c in result.comparisons:
        d = by_pair.get(id(c))
        comparisons.append({**c.as_dict(), "diagnosis": None if d is None else diagnosis_dict(d)})
    s = result.scenario
    worst = worst_pair(result)
    return dict(_without_paths(json_safe({
        "scenario": s.name, "title": s.title, "source": s.source, "file": display_path(s.path),
        "environment": environment.public(),
        "tolerances": {d: {"rtol": t.rtol, "atol": t.atol} for d, t in s.tolerances.items()},
        "runs": runs,
        "comparisons": comparisons,
        "lab_checks": [c.as_dict() for c in result.lab_checks],
        "state": result.state,
        "agree": result.agree,
        "ok": result.ok,
        "plan_faults": result.plan_faults,
        "summary": summary_paragraph(result, diagnoses),
        "worst": None if worst is None else {"a": worst.a, "b": worst.b, "dtype": worst.dtype, "state": worst.state,
                                             "used": used(worst)},
    }), s.path.parent))


def _without_paths(value: Any, folder: Path) -> Any:
    """Every string of ``value`` without a path of this machine (``without_machine_paths``)."""
    if isinstance(value, str):
        return without_machine_paths(value, folder)
    if isinstance(value, dict):
        return {k: _without_paths(v, folder) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_paths(v, folder) for v in value]
    return value


def write_result_json(result: ScenarioResult, path: str | Path, *, diagnoses: Sequence[Diagnosis]) -> None:
    write_json(path, result_dict(result, diagnoses=diagnoses))


def write_json_many(results: Sequence[tuple[ScenarioResult, Sequence[Diagnosis]]], path: str | Path) -> None:
    """A file with variants: ``{"scenarios": [one result each], "agree": ..., "ok": ...}`` (``ok`` over
    all of them)."""
    payload = {"scenarios": [result_dict(r, diagnoses=d) for r, d in results],
               "agree": all(r.agree for r, _ in results), "ok": all(r.ok for r, _ in results)}
    write_json(path, payload)
