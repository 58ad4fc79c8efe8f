"""The report's figures, drawn with matplotlib's object API (no pyplot state) into PNG bytes.

PNGs are byte-deterministic: no ``Software`` tag, no timestamp (Agg writes none),
a fixed size and dpi, and every series drawn in a fixed order.
"""
from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from harness.run.runner import ScenarioResult

FIGSIZE = (9.0, 4.2)  # inches per row of panels; at DPI 100 the PNG is 900 px wide
DPI = 100
COLOURS = {"numpy": "tab:blue", "numpy[keras]": "tab:blue", "numpy[torch]": "tab:purple",
           "keras": "tab:red", "torch": "tab:green"}
# Overlaid curves that coincide stay visible: wide solid lines under narrower dashed/dotted ones
# (the reference in two optimizer conventions: the widest under a narrower solid line).
STYLES = {"numpy": ("-", 4.0), "numpy[keras]": ("-", 5.0), "numpy[torch]": ("-", 3.2),
          "keras": ("--", 2.2), "torch": (":", 1.6)}
PAIR_COLOURS = ("tab:purple", "tab:orange", "tab:brown", "tab:gray", "tab:olive", "tab:cyan")
PAIR_STYLES = (("-", 3.5), ("--", 2.2), (":", 1.6))


def zero_floor(series: list[np.ndarray]) -> float:
    """Where an exact zero is drawn on a log axis: a decade below the smallest positive value."""
    positive = [float(np.min(s[s > 0])) for s in series if np.any(s > 0)]
    if not positive:
        return 1e-20
    return 10.0 ** (np.floor(np.log10(min(positive))) - 1)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


HUGE = 1e250  # matplotlib cannot place log-axis ticks this high (they overflow): such panels draw log10


def beyond_log_axis(series: list[np.ndarray]) -> bool:
    """Whether any finite value is too large for a matplotlib log axis (a diverged run)."""
    return any(np.any(np.abs(np.asarray(v, dtype=np.float64)[np.isfinite(v)]) > HUGE) for v in series)


def exponents(values: np.ndarray) -> np.ndarray:
    """log10 of the values, for a linear axis (log10(0) = -inf and nan are not drawn)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.asarray(values, dtype=np.float64))


def loss_curves_png(result: ScenarioResult) -> bytes | None:
    """Every successful run's batch loss per step, overlaid; one panel per dtype."""
    dtypes = [d for d in result.dtypes if any(result.runs[(fw, d)].ok and result.runs[(fw, d)].steps
                                              for fw in result.frameworks)]
    if not dtypes:
        return None
    fig = Figure(figsize=(FIGSIZE[0], FIGSIZE[1]))
    axes = fig.subplots(1, len(dtypes), squeeze=False)
    for ax, dtype in zip(axes[0], dtypes):
        runs = [(fw, result.runs[(fw, dtype)]) for fw in result.frameworks]
        runs = [(fw, run) for fw, run in runs if run.ok and run.steps]
        huge = beyond_log_axis([run.losses for _, run in runs])
        for fw, run in runs:
            losses = np.asarray(run.losses, dtype=np.float64)
            finite = losses[np.isfinite(losses)]
            style, width = STYLES.get(fw, ("-", 1.2))
            ax.plot(np.arange(run.steps), exponents(losses) if huge else losses, style, color=COLOURS.get(fw),
                    label=fw, linewidth=width)
            if not huge and finite.size and finite.min() > 0 and finite.max() > 10 * finite.min():
                ax.set_yscale("log")  # spans a decade
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"batch loss per step ({dtype})")
        ax.set_xlabel("step")
        loss_name = result.scenario.training_spec.loss
        ax.set_ylabel(f"log10 of {loss_name}" if huge
                      else f"{loss_name} (log scale)" if ax.get_yscale() == "log" else loss_name)
        ax.grid(True, alpha=0.3)
        ax.legend(title="implementation")
    fig.suptitle(f"{result.scenario.name}: loss curves")
    fig.tight_layout()
    return _png(fig)


def differences_png(result: ScenarioResult) -> bytes | None:
    """Per step, each pair's max |a - b| over loss, parameters and layer outputs (top) and the same
    in units of the tolerance with the tolerance drawn at 1 (bottom), as the comparison measured them
    (``Comparison.step_max_abs``, ``step_used``); one column per dtype; log scales.
    None when nothing was compared step by step (a forward-only scenario has no steps)."""
    dtypes = [d for d in result.dtypes if any(c.dtype == d and min(c.steps_a, c.steps_b) for c in result.comparisons)]
    if not dtypes:
        return None
    fig = Figure(figsize=(FIGSIZE[0], 2 * FIGSIZE[1]))
    axes = fig.subplots(2, len(dtypes), squeeze=False, sharex="col")
    pairs = list(dict.fromkeys(c.pair for c in result.comparisons))  # drawing order: widest line first
    colour = {p: PAIR_COLOURS[i % len(PAIR_COLOURS)] for i, p in enumerate(pairs)}
    style = {p: PAIR_STYLES[i % len(PAIR_STYLES)] for i, p in enumerate(pairs)}
    for col, dtype in enumerate(dtypes):
        tol = result.scenario.tolerances[dtype]
        top, bottom = axes[0][col], axes[1][col]
        series = {c.pair: (c.step_max_abs, c.step_used) for c in result.comparisons if c.dtype == dtype}
        floors = (zero_floor([s[0] for s in series.values()]), zero_floor([s[1] for s in series.values()]))
        huge = beyond_log_axis([s[0] for s in series.values()])
        for pair, (max_abs, ratio) in series.items():
            steps = np.arange(max_abs.size)
            label = pair + ("" if max_abs.any() else " (identical)")
            line, width = style[pair]
            for ax, values, floor in ((top, max_abs, floors[0]), (bottom, ratio, floors[1])):
                shown = np.maximum(values, floor)
                if huge and ax is top:
                    shown = exponents(shown)
                ax.plot(steps, shown, line, color=colour[pair], label=label, linewidth=width)
        bottom.axhline(1.0, color="black", linestyle=":", linewidth=1.5,
                       label=f"tolerance (rtol {tol.rtol:g}, atol {tol.atol:g})")
        top.set_title(f"max |a - b| per step ({dtype})")
        top.set_ylabel(f"log10 max |a - b| (exact 0 at {np.log10(floors[0]):.0f})" if huge
                       else f"max |a - b| (log; exact 0 at {floors[0]:.0e})")
        bottom.set_title(f"difference / allowed per step ({dtype})")
        bottom.set_ylabel(f"|a - b| / allowed (log; 0 at {floors[1]:.0e})")
        bottom.set_xlabel("step")
        for ax in (top, bottom):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if not (huge and ax is top):
                ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            ax.legend(title="pair", fontsize="small")
    fig.suptitle(f"{result.scenario.name}: differences between implementations, loss and parameters\n"
                 "allowed = atol + rtol * max(|a|, |b|) per element")
    fig.tight_layout()
    return _png(fig)
