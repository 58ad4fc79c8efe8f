"""The tables the CLI prints and the reports embed, as pandas DataFrames."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from harness.judge.compare import EXPLAINED, Comparison
from harness.judge.result import ScenarioResult
from harness.run.trajectory import Trajectory
from harness.spec.tolerance import difference


def markdown_table(df: pd.DataFrame) -> str:
    """A table as markdown, every cell as written (tabulate would re-parse numbers and drop digits)."""
    return df.to_markdown(index=False, disable_numparse=True)


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and (np.isnan(x) or np.isinf(x)):
        return str(x)
    return f"{x:.2e}"


def values(arr: np.ndarray | None, digits: int = 8) -> str:
    """An array's numbers at ``digits`` decimals at most: a scalar or a vector as ``1.5, 2``; an array
    of two or more dimensions (a kernel) nested as numpy prints it, so its shape shows:
    ``[[0.25, 0.75], [0.5, 0.5], [0.75, 0.25]]`` is (3, 2)."""
    if arr is None:
        return "-"
    array = np.asarray(arr, dtype=np.float64)

    def number(v: float) -> str:
        return np.format_float_positional(v, precision=digits, unique=True, trim="-") if np.isfinite(v) else str(v)

    def nested(a: np.ndarray) -> str:
        return "[" + ", ".join(number(v) for v in a) + "]" if a.ndim == 1 else "[" + ", ".join(map(nested, a)) + "]"

    return nested(array) if array.ndim >= 2 else ", ".join(number(v) for v in array.ravel())


def with_shape(name: str, shape: tuple[int, ...]) -> str:
    """``layers.0.kernel (3, 2)``: a parameter's name with its shape (``(n_in, units)`` for a kernel)."""
    return f"{name} ({', '.join(map(str, shape))}{',' if len(shape) == 1 else ''})"


def runs_table(result: ScenarioResult) -> pd.DataFrame:
    rows = []
    for (framework, dtype), run in result.runs.items():
        nonfinite = run.first_nonfinite_step if run.ok else None
        rows.append({
            "framework": framework, "dtype": dtype, "status": run.status, "convention": run.convention or "-",
            "steps": run.steps if run.ok else "-",
            "stopped early at": "-" if run.stopped_early_at is None else run.stopped_early_at,
            "first inf/nan step": "-" if nonfinite is None else nonfinite,
            "final loss": fmt(float(run.losses[-1])) if run.ok and run.steps else "-",
            "note": run.message or ("32-bit results from 64-bit inputs in " + ", ".join(run.narrowed_ops)
                                    if run.narrowed_ops else ""),
        })
    return pd.DataFrame(rows)


def agreement_table(result: ScenarioResult) -> pd.DataFrame:
    """One row per pair and dtype: max differences of the loss and every parameter, verdict."""
    rows = []
    for c in result.comparisons:
        row: dict[str, object] = {"pair": c.pair, "dtype": c.dtype}
        outputs = [q for name, q in c.quantities.items() if name.startswith("output ")]
        for name, q in c.quantities.items():
            if not name.startswith("output "):
                row[f"{name} max abs"] = fmt(q.max_abs)
                row[f"{name} max rel"] = fmt(q.max_rel)
        if outputs:  # every layer's outputs, with the initial and the final parameters
            row["outputs max abs"] = fmt(max(q.max_abs for q in outputs))
            row["outputs max rel"] = fmt(max(q.max_rel for q in outputs))
        row["tolerance"] = c.tolerance or f"rtol {c.rtol:g}, atol {c.atol:g}"
        row["first divergent step"] = "none" if c.first_divergent_step is None else c.first_divergent_step
        row["verdict"] = c.verdict
        rows.append(row)
    return pd.DataFrame(rows)


def short_verdict(c: Comparison) -> str:
    """The pair's state with its cause in a few words (``differ, explained: Adam epsilon placement``)."""
    return c.verdict.split(" (", 1)[0]


PAIRS_MEASURE = "worst diff / allowed (explained: the gap)"


def pairs_table(result: ScenarioResult, *, gap: Callable[[Comparison], tuple[str, str]]) -> pd.DataFrame:
    """The report's compact table, above the fold: one row per pair and dtype with its state and
    what decides it: for a pair judged by its tolerance, |a - b| / allowed at its worst step
    (``Comparison.closest``); for a pair that differs, explained, ``gap(c)``: the difference its cause
    accounts for and where it is largest (a fraction of a tolerance that does not apply to it would
    say nothing)."""
    rows = []
    for c in result.comparisons:
        if c.state == EXPLAINED:
            measure, where = gap(c)
        else:
            step, quantity, fraction = c.closest if c.closest is not None else (None, "-", 0.0)
            measure = f"{fraction:.2g}"
            where = quantity if step is None or not c.step_max_abs.size else f"{quantity}, step {step}"
        rows.append({
            "pair": c.pair, "dtype": c.dtype, "state": short_verdict(c),
            PAIRS_MEASURE: measure, "where": where,
            "largest abs diff": fmt(c.max_abs),
            "first divergent step": "none" if c.first_divergent_step is None else c.first_divergent_step,
        })
    return pd.DataFrame(rows)


def _ok_runs(result: ScenarioResult, dtype: str) -> dict[str, Trajectory]:
    return {fw: result.runs[(fw, dtype)] for fw in result.frameworks if result.runs[(fw, dtype)].ok}


def _spread(arrays: list[np.ndarray]) -> float:
    """The largest difference between any two of the arrays, by the agreement rule's difference
    (nan against nan and the same inf count as equal)."""
    return max((float(np.max(difference(a, b), initial=0.0)) for a in arrays for b in arrays), default=0.0)


def final_params_table(result: ScenarioResult, dtype: str) -> pd.DataFrame | None:
    """Final parameters side by side, with the lab's printed final values where it printed them."""
    runs = _ok_runs(result, dtype)
    if not runs:
        return None
    lab = {v.param: v.value for v in result.scenario.lab_values if v.what == "params" and v.step == "final"}
    rows = []
    for name, shape in result.scenario.param_shapes().items():
        finals = {fw: run.final_params[name] for fw, run in runs.items()}
        row = {"parameter": with_shape(name, shape)}
        for fw, v in finals.items():
            row[fw] = values(v)
        if dtype == "float64" or name in lab:
            row["lab"] = values(lab.get(name)) if name in lab else "-"
        row["largest difference"] = fmt(_spread(list(finals.values())))
        rows.append(row)
    return pd.DataFrame(rows)


def outputs_table(result: ScenarioResult, dtype: str) -> pd.DataFrame | None:
    """A forward-only scenario's result: the last layer's outputs, row by row, side by side."""
    runs = _ok_runs(result, dtype)
    if not runs:
        return None
    rows = []
    first = next(iter(runs.values())).outputs_final[-1]
    for i in range(first.shape[0]):
        row: dict[str, object] = {"row": i}
        for fw, run in runs.items():
            row[fw] = values(run.outputs_final[-1][i])
        row["largest difference"] = fmt(_spread([run.outputs_final[-1][i] for run in runs.values()]))
        rows.append(row)
    return pd.DataFrame(rows)


def accuracy_table(result: ScenarioResult) -> pd.DataFrame | None:
    """Accuracy of each run's final parameters on the training data and the held-out splits."""
    rows = []
    for (label, dtype), run in result.runs.items():
        scores = result.accuracy.get((label, dtype), {})
        if scores:
            rows.append({"implementation": label, "dtype": dtype,
                         **{split: f"{value:.2%}" for split, value in scores.items()}})
    return pd.DataFrame(rows) if rows else None


def lab_table(result: ScenarioResult) -> pd.DataFrame:
    rows = []
    for check in result.lab_checks:
        rows.append({
            "quantity": check.label, "lab printed": values(check.lab.value),
            "reference": values(check.computed, digits=10),
            "max abs diff": fmt(check.max_abs_diff), "tolerance": check.tolerance_text,
            "verdict": "matches" if check.ok else "MISMATCH",
        })
    return pd.DataFrame(rows)


def localisation_table(stages, *, floor: float) -> pd.DataFrame:
    """One row per traced stage of a step, in data-flow order (``harness.judge.diagnosis.StageDiff``);
    ``floor``: R's floor in the pair's dtype (``harness.judge.diagnosis.r_floor``)."""
    return pd.DataFrame([{
        "stage (data-flow order)": s.stage, "max abs diff": fmt(s.max_abs), "max rel diff d": fmt(s.max_rel),
        f"R = (d - d_prev) / (d_prev + {floor:.2g})".replace("e-0", "e-"): fmt(s.rate),
        "beyond tolerance": "yes" if s.beyond_tolerance else "no",
    } for s in stages])
