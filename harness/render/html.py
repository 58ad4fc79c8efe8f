"""Optional HTML pages (``nn-parity report --html``): one per scenario and ``index.html``.

A page needs no network when viewed, only its folder: plotly's JavaScript is one shared file of
the folder (``shared_files``: ``plotly-<version>.min.js``, written once by the report command and
loaded by every page through a relative ``src``), the PNGs are the report's own files beside it,
and no ``src`` or link points outside the folder. So a page stays small (under 300 KB: the
interactive plots hold at most ``POINTS_PER_FIGURE`` points each, every bucket of steps keeping its
smallest and largest value) and a catalogue of pages can be uploaded to an LMS. The text is the
scenario's markdown report, converted here (only the subset the report writes: headings,
paragraphs, lists, tables, images, ``<details>``, `code` and **bold**); the loss and difference
plots are interactive. Deterministic like the markdown: fixed element ids, the same figures from
the same numbers.
"""
from __future__ import annotations

import html
import re

import numpy as np
import plotly.graph_objects as go  # type: ignore[import-untyped]  # no stubs; pyproject is pinned
import plotly.io as pio  # type: ignore[import-untyped]
from plotly.offline import get_plotlyjs, get_plotlyjs_version  # type: ignore[import-untyped]
from plotly.subplots import make_subplots  # type: ignore[import-untyped]

from harness.judge.result import ScenarioResult
from harness.render.free_text import LINK, safe_link
from harness.render.plots import COLOURS, PAIR_COLOURS, pair_series, zero_floor

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.45rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
code { background: #f3f3f3; padding: 0 0.2rem; }
details { margin: 0.6rem 0; border-left: 3px solid #ddd; padding-left: 0.8rem; }
summary { cursor: pointer; font-weight: 600; }
img { max-width: 100%; }
.plot { margin: 1rem 0; }
"""
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SYMBOLS = ("circle", "square", "triangle-up", "triangle-down", "diamond", "x", "cross", "star")


# what the markdown's text may hold besides text (``harness.render.free_text`` writes the first three)
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  # a backslash-escaped ASCII punctuation mark


def _inline(text: str) -> str:
    """Markdown inline marks of the report: `code`, **bold**, [text](link) to a safe target
    (``free_text.safe_link``; any other is text). Everything else is text, escaped: the markdown's
    entities and backslash escapes are read first, and what they stand for is never markup."""
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    held: list[str] = []

    def hold(match: re.Match[str]) -> str:
        held.append(match[1])
        return f"\x00{len(held) - 1}\x00"

    out = html.escape(_ESCAPED.sub(hold, text.replace("\x00", "")), quote=True)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = LINK.sub(lambda m: f'<a href="{m[2]}">{m[1]}</a>' if safe_link(html.unescape(m[2])) else m[0], out)
    return re.sub("\x00([0-9]+)\x00", lambda m: html.escape(held[int(m[1])], quote=True), out)


def _raw_line(line: str) -> bool:
    """A line the report writes as HTML itself: ``<details>``, ``</details>``, ``<summary>`` with
    escaped text, or an HTML comment that nothing in it can end early (``free_text.comment_json``)."""
    if line in ("<details>", "</details>"):
        return True
    summary = re.fullmatch(r"<summary>([^<>]*)</summary>", line)
    comment = re.fullmatch(r"<!--([^<>]*)-->", line)
    return summary is not None or comment is not None


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table(rows: list[str]) -> str:
    head, body = _cells(rows[0]), [_cells(r) for r in rows[2:]]
    return ("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in body)
            + "</tbody></table>")


def markdown_to_html(text: str, *, images: dict[str, str]) -> str:
    """The report's markdown as HTML; ``images`` maps a PNG name to what replaces its image line."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            out.append(_table(block))
            continue
        if line.startswith("- "):
            items: list[str] = []
            while i < len(lines) and (lines[i].startswith("- ") or lines[i].startswith("  - ")):
                item = lines[i]
                items.append(f"<li>{_inline(item[2:])}</li>" if item.startswith("- ")
                             else f"<ul><li>{_inline(item[4:])}</li></ul>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        i += 1
        heading = re.match(r"(#{1,4}) (.*)", line)
        image = re.fullmatch(r"!\[[^\]]*\]\(([^)]+)\)", line)
        if heading:
            level = len(heading[1])
            out.append(f"<h{level}>{_inline(heading[2])}</h{level}>")
        elif image:
            out.append(images.get(image[1], ""))
        elif _raw_line(line):
            out.append(line)
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    return "\n".join(out)


def plotly_script() -> str:
    """The name of the folder's one copy of plotly's JavaScript, which every page loads (relative)."""
    return f"plotly-{get_plotlyjs_version()}.min.js"


def shared_files() -> dict[str, bytes]:
    """The files every page of a folder shares, by name: plotly's JavaScript (about 4.8 MB, once)."""
    return {plotly_script(): get_plotlyjs().encode()}


def _page(title: str, body: str, *, scripts: tuple[str, ...] = ()) -> str:
    head = "".join(f'<script src="{html.escape(src)}"></script>\n' for src in scripts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{STYLE}</style>\n{head}</head>\n<body>\n{body}\n</body>\n</html>\n")


POINTS_PER_FIGURE = 8000  # the interactive plots' budget: what keeps a page of 5000 steps under 300 KB
MIN_POINTS = 64  # per series, however many series a figure has


def thinned(values: np.ndarray, points: int) -> tuple[list[int], list[float | None]]:
    """A series for plotly: its steps and values at 4 significant digits (None: not drawn, a gap).
    A series longer than ``points`` keeps, in each of ``points // 2`` equal buckets of steps, the
    step of its smallest and of its largest finite value and its first inf/nan step (a gap), and
    the first and last step: every peak and every gap stays visible."""
    values = np.asarray(values, dtype=np.float64)
    if values.size <= points:
        steps = np.arange(values.size)
    else:
        keep = {0, values.size - 1}
        for bucket in np.array_split(np.arange(values.size), max(1, points // 2)):
            finite = np.isfinite(values[bucket])
            if finite.any():
                kept = bucket[finite]
                keep.update((int(kept[np.argmin(values[kept])]), int(kept[np.argmax(values[kept])])))
            if not finite.all():
                keep.add(int(bucket[np.argmin(finite)]))  # its first inf/nan step: the gap stays
        steps = np.array(sorted(keep))
    return ([int(k) for k in steps],
            [float(f"{v:.4g}") if np.isfinite(v) else None for v in values[steps]])


def _per_series(series: int) -> int:
    return max(MIN_POINTS, POINTS_PER_FIGURE // max(series, 1))


def loss_figure(result: ScenarioResult) -> go.Figure | None:
    dtypes = [d for d in result.dtypes if any(result.runs[(fw, d)].ok and result.runs[(fw, d)].steps
                                              for fw in result.frameworks)]
    if not dtypes:
        return None
    fig = make_subplots(rows=1, cols=len(dtypes), shared_yaxes=True,
                        subplot_titles=[f"batch loss per step ({d})" for d in dtypes])
    log = False
    points = _per_series(sum(result.runs[(fw, d)].ok for fw in result.frameworks for d in dtypes))
    for col, dtype in enumerate(dtypes, start=1):
        runs = [(fw, result.runs[(fw, dtype)]) for fw in result.frameworks
                if result.runs[(fw, dtype)].ok and result.runs[(fw, dtype)].steps]
        for i, (fw, run) in enumerate(runs):
            losses = np.asarray(run.losses, dtype=np.float64)
            finite = losses[np.isfinite(losses)]
            log = log or bool(finite.size and finite.min() > 0 and finite.max() > 10 * finite.min())
            steps, shown = thinned(losses, points)
            fig.add_trace(go.Scatter(
                x=steps, y=shown, name=f"{fw} ({dtype})", mode="lines+markers",
                line={"color": _css(COLOURS.get(fw, "tab:gray")), "dash": DASHES[i % len(DASHES)],
                      "width": max(1.0, 4.0 - i)},
                marker={"symbol": SYMBOLS[i % len(SYMBOLS)], "size": 5, "maxdisplayed": 40}), row=1, col=col)
        first = min((s for _, r in runs if (s := r.first_nonfinite_step) is not None), default=None)
        if first is not None:
            fig.add_vline(x=first, line={"color": "crimson", "dash": "dash"}, row=1, col=col,
                          annotation_text=f"inf/nan from step {first}")
    fig.update_yaxes(type="log" if log else "linear", title_text=result.scenario.training_spec.loss, col=1)
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=420, template="plotly_white", title=f"{result.scenario.name}: loss curves")
    return fig


def differences_figure(result: ScenarioResult) -> go.Figure | None:
    dtypes = [d for d in result.dtypes if any(c.dtype == d and c.step_max_abs.size for c in result.comparisons)]
    if not dtypes:
        return None
    fig = make_subplots(rows=2, cols=len(dtypes), shared_xaxes=True, shared_yaxes=True,
                        subplot_titles=[f"max |a - b| per step ({d})" for d in dtypes]
                        + [f"|a - b| / allowed per step ({d}): the verdict's test" for d in dtypes])
    pairs = list(dict.fromkeys(c.pair for c in result.comparisons))
    series = {d: [(c, *pair_series(result, c)) for c in result.comparisons if c.dtype == d and c.step_max_abs.size]
              for d in dtypes}
    floors = (zero_floor([s[1] for v in series.values() for s in v]),
              zero_floor([s[2] for v in series.values() for s in v]))
    points = _per_series(2 * sum(len(v) for v in series.values()))
    for col, dtype in enumerate(dtypes, start=1):
        for c, max_abs, ratio, first in series[dtype]:
            i = pairs.index(c.pair)
            for row, values, floor in ((1, max_abs, floors[0]), (2, ratio, floors[1])):
                steps, shown = thinned(np.where(values == 0, floor, values), points)
                fig.add_trace(go.Scatter(
                    x=steps, y=shown,
                    name=f"{c.pair} ({dtype}): {c.state}", legendgroup=f"{c.pair} {dtype}", showlegend=row == 2,
                    mode="lines+markers",
                    line={"color": _css(PAIR_COLOURS[i % len(PAIR_COLOURS)]), "dash": DASHES[i % len(DASHES)],
                          "width": max(1.0, 4.0 - i * 0.6)},
                    marker={"symbol": SYMBOLS[i % len(SYMBOLS)], "size": 5, "maxdisplayed": 40}),
                    row=row, col=col)
        tol = result.scenario.tolerances[dtype]
        fig.add_hline(y=1.0, line={"color": "black", "dash": "dot"}, row=2, col=col,
                      annotation_text=f"tolerance ({tol.describe()})")
        first = min((s for *_, s in series[dtype] if s is not None), default=None)
        if first is not None:
            for row in (1, 2):
                fig.add_vline(x=first, line={"color": "crimson", "dash": "dash"}, row=row, col=col,
                              annotation_text=f"inf/nan from step {first}")
    fig.update_yaxes(type="log", exponentformat="e")
    fig.update_yaxes(title_text=f"max |a - b| (exact 0 at {floors[0]:.0e})", row=1, col=1)
    fig.update_yaxes(title_text=f"|a - b| / allowed (0 at {floors[1]:.0e})", row=2, col=1)
    fig.update_xaxes(title_text="step", row=2)
    fig.update_layout(height=760, template="plotly_white",
                      title=f"{result.scenario.name}: differences between implementations")
    return fig


def _css(matplotlib_colour: str) -> str:
    """A matplotlib ``tab:`` colour as CSS."""
    table = {"tab:blue": "#1f77b4", "tab:orange": "#ff7f0e", "tab:green": "#2ca02c", "tab:red": "#d62728",
             "tab:purple": "#9467bd", "tab:brown": "#8c564b", "tab:pink": "#e377c2", "tab:gray": "#7f7f7f",
             "tab:olive": "#bcbd22", "tab:cyan": "#17becf"}
    return table.get(matplotlib_colour, "#444444")


def scenario_page(result: ScenarioResult, text: str, pngs: dict[str, bytes]) -> str:
    """One scenario's page: its markdown report as HTML, the interactive plots in place of the PNGs
    (which follow below the fold, as the report's own files beside the page). It loads the folder's
    shared plotly script (``shared_files``), which the report command writes before any page."""
    name = result.scenario.name
    figures = [(kind, fig) for kind, fig in (("loss", loss_figure(result)), ("differences", differences_figure(result)))
               if fig is not None]
    interactive = "".join(
        '<div class="plot">' + pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=f"{name}-{kind}",
                                            default_height=f"{fig.layout.height}px",
                                            config={"displaylogo": False, "responsive": True}) + "</div>"
        for kind, fig in figures)
    still = "".join(f'<img alt="{html.escape(n)}" src="{html.escape(n)}">' for n in pngs)
    images = dict.fromkeys(pngs, "")
    if pngs:
        images[next(iter(pngs))] = (interactive + "<details><summary>The same plots as images</summary>"
                                    + still + "</details>")
    return _page(result.scenario.title, markdown_to_html(text, images=images),
                 scripts=(plotly_script(),) if figures else ())


def index_page(counts: str, note: str, header: tuple[str, ...], rows: list[list[str]], *,
               environment: tuple[str, list[str]]) -> str:
    """The index: the counts, the environment the reports were made in (a line and, for several, one
    item each: ``harness.render.index.index_environment``), then one row per scenario linking to its
    page (the last cell)."""
    where, each = environment
    items = f"<ul>{''.join(f'<li>{html.escape(item)}</li>' for item in each)}</ul>\n" if each else ""
    head = "".join(f"<th>{html.escape(h.replace(chr(92), ''))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row[:-1])
                   + f'<td><a href="{html.escape(row[-1])}">{html.escape(row[-1])}</a></td></tr>' for row in rows)
    return _page("nn-parity reports", f"<h1>nn-parity reports</h1>\n<p>{html.escape(counts)}</p>\n"
                 f"<p>{html.escape(where)}</p>\n{items}<p>{_inline(note)}</p>\n<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def markdown_page(title: str, text: str) -> str:
    """A self-contained page of markdown without images (e.g. the fuzz index), escaped as the reports are."""
    return _page(title, markdown_to_html(text, images={}))
