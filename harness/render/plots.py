"""The report's figures, drawn with matplotlib's object API (no pyplot state) into PNG bytes.

PNGs are byte-deterministic: no ``Software`` tag, no timestamp (Agg writes none),
a fixed size and dpi, and every series drawn in a fixed order.

What the figures promise (issue 13): every series is visible, even one lying exactly on
another (distinct colours, dashes and markers at staggered steps; an identical series says so
in the legend); the difference plot's lower row draws the quantity the verdict tests,
|a - b| / allowed, with the tolerance at 1, so a pair drawn above the line is labelled
``differ, explained`` or ``disagree``, never ``agree``; panels of one row share one axis scale
(log10 values on a linear axis whenever a log scale is needed, so a diverged run's 1e+300 and
a float32 run's 1e-5 are drawn alike); and steps where a run holds inf/nan are a gap, with
the first such step marked.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import threading
from typing import Callable

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from harness.judge.compare import Comparison
from harness.judge.result import ScenarioResult
from harness.run.cache import current as current_cache
from harness.run.cache_key import stamp
from harness.run.trajectory import Trajectory

FIGSIZE = (9.0, 4.2)  # inches per row of panels; at DPI 100 the PNG is 900 px wide
DPI = 100
# the differences figure's legends: lines the base height holds beside its plots, and the inches each
# line more adds to the figure (measured: a line took 18 px from the plots before)
LEGEND_LINES, LEGEND_LINE = 6, 0.18
COLOURS = {"numpy": "tab:blue", "numpy[keras]": "tab:blue", "numpy[torch]": "tab:purple",
           "keras": "tab:red", "torch": "tab:green"}
# Overlaid curves that coincide stay visible: wide solid lines under narrower dashed/dotted ones,
# each with its own marker, the markers of different series at different steps.
STYLES = {"numpy": ("-", 4.0, "o"), "numpy[keras]": ("-", 5.0, "o"), "numpy[torch]": ("-", 3.2, "s"),
          "keras": ("--", 2.2, "^"), "torch": (":", 1.6, "v")}
PAIR_COLOURS = ("tab:purple", "tab:orange", "tab:brown", "tab:gray", "tab:olive", "tab:cyan", "tab:pink",
                "tab:blue")
PAIR_STYLES = (("-", 3.5, "o"), ("--", 2.4, "s"), (":", 1.8, "^"), ("-.", 1.5, "v"), ((0, (1, 1)), 1.2, "D"),
               ("--", 1.0, "x"))
MARKS = 12  # markers per series
_DRAWING = threading.Lock()  # matplotlib is not thread-safe: reports made on several threads draw one at a time


def drawn(draw: Callable[[ScenarioResult], bytes | None], result: ScenarioResult) -> bytes | None:
    """``draw(result)``, or the PNG the same drawing gave before for the same numbers, kept in the
    command's run cache (``harness.run.cache``; none: drawn every time). The key is a SHA-256 of
    the harness's code and the environment (``stamp``), the drawing, the scenario, the
    implementations and every run's status and numbers: anything a figure shows changes it."""
    cache = current_cache()
    if cache is None:
        return _locked(draw, result)
    h = hashlib.sha256(f"{stamp()}\nfigure {draw.__name__}\n".encode())
    h.update(pickle.dumps((result.scenario, result.frameworks, result.dtypes, sorted(result.sides.items()))))
    for (label, dtype), run in sorted(result.runs.items()):
        h.update(f"{label} {dtype} {run.status} {run.message!r} {run.convention} {run.stopped_early_at}\n".encode())
        arrays = [run.losses, *(run.params[k] for k in sorted(run.params)), *(run.grads[k] for k in sorted(run.grads)),
                  *run.outputs_initial, *run.outputs_final]
        for array in arrays:
            a = np.ascontiguousarray(array)
            h.update(f"{a.dtype.str} {a.shape}\n".encode())
            h.update(a.tobytes())
    key = h.hexdigest()
    found = cache.get(key)
    if not (isinstance(found, tuple) and len(found) == 1 and isinstance(found[0], (bytes, type(None)))):
        found = (_locked(draw, result),)  # a tuple: a figure that is not drawn (None) is kept too
        cache.put(key, found)
    png: bytes | None = found[0]
    return png


def _locked(draw: Callable[[ScenarioResult], bytes | None], result: ScenarioResult) -> bytes | None:
    with _DRAWING:
        return draw(result)


def _png(fig: Figure) -> bytes:
    """The figure, laid out already (``tight_layout``), drawn once: without a layout engine ``savefig``
    draws it once, not a second time first for a layout engine (``tight_layout`` leaves a placeholder
    one); the same bytes, measured on the catalogue's 98 figures, for 10-20% less CPU."""
    fig.set_layout_engine(None)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


HUGE = 1e250  # matplotlib cannot place log-axis ticks this high (they overflow): log10 values are drawn instead


def beyond_log_axis(series: list[np.ndarray]) -> bool:
    """Whether any finite value is too large for a matplotlib log axis (a diverged run)."""
    return any(np.any(np.abs(np.asarray(v, dtype=np.float64)[np.isfinite(v)]) > HUGE) for v in series)


def exponents(values: np.ndarray) -> np.ndarray:
    """log10 of the values, for a linear axis; 0, negative and non-finite values are nan (not drawn)."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(values)
    return np.where(np.isfinite(out), out, np.nan)


def _powers_of_ten(ax: Axes) -> None:
    """An axis of log10 values, ticked at whole powers of ten and labelled ``1e-12``."""
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"1e{int(round(v))}"))


def _markevery(steps: int, index: int, count: int) -> tuple[int, int]:
    """Markers every ``steps / MARKS`` steps, series ``index`` of ``count`` offset by its share."""
    every = max(1, steps // MARKS)
    return (index * every // max(count, 1), every)


def _markers(steps: int, index: int, count: int, marker: str) -> dict[str, object]:
    """Marker options of series ``index``: staggered steps, a white rim; with a marker at every step
    (few steps), larger markers first, so a later one drawn on an earlier one leaves it visible."""
    every = _markevery(steps, index, count)
    size = max(3.5, 8.5 - 1.5 * index) if every[1] == 1 else 6.5
    return {"marker": marker, "markevery": every, "markersize": size, "markeredgecolor": "white",
            "markeredgewidth": 0.7}


def nonfinite_steps(run: Trajectory) -> np.ndarray:
    """Per step, whether the run's loss or any updated parameter holds inf or nan."""
    bad = ~np.isfinite(run.losses)
    for values in run.params.values():
        bad = bad | ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
    return bad


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """The contiguous runs of True in ``mask``, as (start, stop) step ranges."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _mark_nonfinite(ax: Axes, step: int | None, label: str) -> None:
    if step is not None:
        ax.axvline(step, color="crimson", linestyle=(0, (4, 2)), linewidth=1.3, label=label)


def loss_curves_png(result: ScenarioResult) -> bytes | None:
    """Every successful run's batch loss per step, overlaid; one panel per dtype, one y scale for
    all of them; a step whose loss is inf/nan is a gap, and the first one is marked."""
    dtypes = [d for d in result.dtypes if any(result.runs[(fw, d)].ok and result.runs[(fw, d)].steps
                                              for fw in result.frameworks)]
    if not dtypes:
        return None
    panels = {d: [(fw, result.runs[(fw, d)]) for fw in result.frameworks
                  if result.runs[(fw, d)].ok and result.runs[(fw, d)].steps] for d in dtypes}
    losses = [np.asarray(run.losses, dtype=np.float64) for runs in panels.values() for _, run in runs]
    finite = np.concatenate([v[np.isfinite(v)] for v in losses])
    log = bool(finite.size and finite.min() > 0 and (finite.max() > 10 * finite.min() or beyond_log_axis(losses)))
    fig = Figure(figsize=(FIGSIZE[0], FIGSIZE[1]))
    axes = fig.subplots(1, len(dtypes), squeeze=False, sharey=True)
    loss_name = result.scenario.training_spec.loss
    for ax, dtype in zip(axes[0], dtypes):
        runs = panels[dtype]
        for i, (fw, run) in enumerate(runs):
            values = np.where(np.isfinite(run.losses), np.asarray(run.losses, dtype=np.float64), np.nan)
            style, width, marker = STYLES.get(fw, ("-", 1.2, "o"))
            ax.plot(np.arange(run.steps), exponents(values) if log else values, linestyle=style,
                    color=COLOURS.get(fw), label=fw, linewidth=width, **_markers(run.steps, i, len(runs), marker))
        firsts = sorted({s for _, run in runs if (s := run.first_nonfinite_step) is not None})
        if firsts:
            who = "every run" if len(firsts) == 1 and all(run.first_nonfinite_step is not None for _, run in runs) \
                else "first run"
            _mark_nonfinite(ax, firsts[0], f"inf/nan from step {firsts[0]} ({who}): not drawn")
        ax.set_xlim(-0.5, max(run.steps for _, run in runs) - 0.5 if max(run.steps for _, run in runs) > 1 else 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        ax.set_title(f"batch loss per step ({dtype})")
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        ax.legend(title="implementation", fontsize="small")
    if log:
        _powers_of_ten(axes[0][0])
    axes[0][0].set_ylabel(f"{loss_name} (log scale)" if log else loss_name)
    fig.suptitle(f"{result.scenario.name}: loss curves (one y scale for all panels)")
    fig.tight_layout()
    return _png(fig)


def pair_series(result: ScenarioResult, c: Comparison) -> tuple[np.ndarray, np.ndarray, int | None]:
    """A pair's per-step max |a - b| and |a - b| / allowed, nan (a gap) where the difference is 0
    only because both runs hold inf/nan there, and the pair's first step with inf/nan."""
    n = c.step_max_abs.size
    bad = np.zeros(n, dtype=bool)
    for label in (c.a, c.b):
        run = result.runs.get((label, c.dtype))
        if run is not None and run.ok:
            bad |= nonfinite_steps(run)[:n]
    hidden = bad & (c.step_max_abs == 0)
    return (np.where(hidden, np.nan, c.step_max_abs), np.where(hidden, np.nan, c.step_used), _first(bad))


def differences_png(result: ScenarioResult) -> bytes | None:
    """Per step, each pair's max |a - b| over loss, parameters and layer outputs (top row) and
    |a - b| / allowed, the quantity the verdict tests, with the tolerance at 1 (bottom row), as the
    comparison measured them (``Comparison.step_max_abs``, ``step_used``); one column per dtype,
    one log scale per row. None when nothing was compared step by step (forward-only)."""
    dtypes = [d for d in result.dtypes if any(c.dtype == d and min(c.steps_a, c.steps_b) for c in result.comparisons)]
    if not dtypes:
        return None
    fig = Figure(figsize=(FIGSIZE[0], 2.35 * FIGSIZE[1]))
    axes = fig.subplots(2, len(dtypes), squeeze=False, sharex="col", sharey="row")
    pairs = list(dict.fromkeys(c.pair for c in result.comparisons))  # drawing order: widest line first
    colour = {p: PAIR_COLOURS[i % len(PAIR_COLOURS)] for i, p in enumerate(pairs)}
    style = {p: PAIR_STYLES[i % len(PAIR_STYLES)] for i, p in enumerate(pairs)}
    drawn = {d: [(c, *pair_series(result, c)) for c in result.comparisons if c.dtype == d and c.step_max_abs.size]
             for d in dtypes}
    rows = ([s[1] for series in drawn.values() for s in series], [s[2] for series in drawn.values() for s in series])
    floors = [zero_floor(values) for values in rows]
    for col, dtype in enumerate(dtypes):
        tol = result.scenario.tolerances[dtype]
        top, bottom = axes[0][col], axes[1][col]
        seen: list[tuple[str, np.ndarray, np.ndarray]] = []
        for i, (c, max_abs, ratio, _) in enumerate(drawn[dtype]):
            same = next((p for p, a, r in seen if np.array_equal(a, max_abs, equal_nan=True)
                         and np.array_equal(r, ratio, equal_nan=True)), None)
            close = next((p for p, a, r in seen if np.allclose(a, max_abs, rtol=0.02, atol=0, equal_nan=True)
                          and np.allclose(r, ratio, rtol=0.02, atol=0, equal_nan=True)), None)
            seen.append((c.pair, max_abs, ratio))
            label = f"{c.pair}: {c.state}" + (" (identical runs)" if not np.nansum(max_abs) else "") + (
                f"\n    (same values as {same})" if same else f"\n    (within 2% of {close}, drawn over it)" if close
                else "")
            line, width, marker = style[c.pair]
            for ax, values, floor in ((top, max_abs, floors[0]), (bottom, ratio, floors[1])):
                shown = exponents(np.where(values == 0, floor, values))
                ax.plot(np.arange(values.size), shown, linestyle=line, color=colour[c.pair], label=label,
                        linewidth=width, **_markers(values.size, i, len(drawn[dtype]), marker))
        first = min((s for *_, s in drawn[dtype] if s is not None), default=None)
        steps = max((s[1].size for s in drawn[dtype]), default=1)
        hidden = np.zeros(steps, dtype=bool)
        for _, max_abs, _, _ in drawn[dtype]:
            hidden[:max_abs.size] |= np.isnan(max_abs)
        for ax in (top, bottom):
            _mark_nonfinite(ax, first, f"first inf/nan at step {first}")
            for k, (start, stop) in enumerate(_spans(hidden)):
                ax.axvspan(start - 0.5, stop - 0.5, color="crimson", alpha=0.08, linewidth=0,
                           label=None if k else f"steps {start}-{stop - 1}: both runs inf/nan, no difference drawn")
            ax.set_xlim(-0.5, max(steps - 0.5, 0.5))
        bottom.axhline(0.0, color="black", linestyle=(0, (1, 1)), linewidth=1.8,
                       label=f"tolerance of every pair ({tol.describe()}) = 1")
        top.set_title(f"max |a - b| per step ({dtype})")
        bottom.set_title(f"|a - b| / allowed per step ({dtype})")
        bottom.set_xlabel("step")
        for ax in (top, bottom):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
            ax.grid(True, alpha=0.3)
        bottom.legend(title="pair: state", fontsize="x-small", title_fontsize="small", loc="upper center",
                      bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False)
    _powers_of_ten(axes[0][0])
    _powers_of_ten(axes[1][0])
    # two lines each: one would be longer than its plot is high, and run into the other plot's
    axes[0][0].set_ylabel(f"max |a - b|\n(log; exact 0 at {floors[0]:.0e})")
    axes[1][0].set_ylabel(f"|a - b| / allowed: the verdict's test\n(log; 0 at {floors[1]:.0e})")
    fig.suptitle(f"{result.scenario.name}: differences between implementations (loss, parameters, outputs)\n"
                 "allowed = atol + rtol * max(|a|, |b|) per element; above 1: beyond the tolerance")
    # the legends below the plots take the height they need: a long one (Keras on every backend, control
    # runs) makes the figure taller instead of the plots shorter
    lines = max(sum(text.get_text().count("\n") + 1 for text in ax.get_legend().get_texts())
                for ax in axes[1])
    fig.set_size_inches(FIGSIZE[0], fig.get_figheight() + LEGEND_LINE * max(0, lines - LEGEND_LINES))
    fig.tight_layout()
    return _png(fig)


def zero_floor(series: list[np.ndarray]) -> float:
    """Where an exact zero is drawn on a log axis: a decade below the smallest positive value."""
    positive = [float(np.nanmin(s[s > 0])) for s in series if np.any(s > 0)]
    if not positive:
        return 1e-20
    return float(10.0 ** (np.floor(np.log10(min(positive))) - 1))
