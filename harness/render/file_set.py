"""The files of one scenario's report, made together and written as one set: the markdown, its PNG
plots (named by their content's hash) and, with ``--html``, its page; which file names belong to a
scenario's set (so a rewrite removes its stale plots); and the run times kept beside it, out of the
report so that the report stays byte-identical."""
from __future__ import annotations

import re
from typing import Callable, Sequence

from harness.judge.diagnosis import Diagnosis
from harness.judge.result import ScenarioResult
from harness.render.files import content_name, without_machine_paths
from harness.render.html import scenario_page
from harness.render.plots import differences_png, drawn, loss_curves_png
from harness.render.scenario_report import scenario_markdown


def scenario_files(result: ScenarioResult, diagnoses: Sequence[Diagnosis], *,
                   html: bool = False) -> dict[str, bytes]:
    """Every file of one scenario's report, by name: the markdown and its PNGs (and, with ``html``,
    the page ``<name>.html``, which loads the folder's shared plotly script and these PNGs). No file
    carries a path of this machine."""
    from_folders = (result.scenario.path.parent,)  # besides the working directory, home, python, tmp
    name = result.scenario.name
    figures = {"loss": drawn(loss_curves_png, result), "differences": drawn(differences_png, result)}
    pngs = {content_name(f"{name}-{kind}", png, ".png"): png for kind, png in figures.items() if png is not None}
    text = without_machine_paths(scenario_markdown(result, diagnoses, plots=tuple(pngs)), *from_folders)
    files = {f"{name}.md": text.encode(), **pngs}
    if html:
        files[f"{name}.html"] = scenario_page(result, text, pngs).encode()  # text: already without paths
    return files


def report_set(name: str) -> Callable[[str], bool]:
    """Whether a file name belongs to the report of scenario ``name``: its markdown, its page and plots
    (the plots of every earlier version too, whose names carry their content's hash)."""
    pattern = re.compile(rf"{re.escape(name)}(\.md|\.html|-(loss|differences)(-[0-9a-f]{{12}})?\.png)")
    return lambda file_name: pattern.fullmatch(file_name) is not None


def timings_text(result: ScenarioResult) -> str:
    """Wall-clock seconds per run; kept out of the markdown so reports stay byte-identical."""
    return "".join(f"{fw}\t{dtype}\t{run.status}\t{run.seconds:.2f}\n" for (fw, dtype), run in result.runs.items())
