"""`nn-parity report`: the sections of a scenario's report, the plots, the index, crashes,
atomic writes, progress lines, and byte-for-byte determinism. Real NumPy, Keras and torch runs."""
from __future__ import annotations

import json
import re
import sys
import tempfile
import tomllib
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure

import harness.render.file_set
from harness.commands.cli import main
from harness.judge.compare import compare
from harness.pipeline import diagnose, run_scenario
from harness.render import plots
from harness.render.file_set import scenario_files
from harness.render.files import content_name, without_machine_paths, write_files_atomic
from harness.render.header import index_entry, read_index_entry
from harness.render.index import index_markdown
from harness.render.plots import pair_series
from harness.run.trajectory import Trajectory
from harness.spec.scenario import parse_scenario
from harness.spec.tolerance import Tolerance
from tests.on_first_use import torch

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

TINY = (Path(__file__).resolve().parent / "scenarios" / "tiny-mlp.toml").read_text()
pytestmark = pytest.mark.slow  # every report here runs Keras and torch


@pytest.fixture
def tiny_file(tmp_path) -> Path:
    path = tmp_path / "tiny-mlp.toml"
    path.write_text(TINY)
    return path


def tiny():
    return parse_scenario(tomllib.loads(TINY), path=Path("tests/tiny-mlp.toml"))


def report(path: Path, out: Path, *extra: str) -> int:
    return main(["report", "--scenario", str(path), "--out", str(out), *extra])


def full_report(out: Path) -> dict[str, bytes]:
    """The tiny scenario reported through the CLI (all frameworks, both dtypes)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "tiny-mlp.toml").write_text(TINY)
    assert report(out / "tiny-mlp.toml", out / "reports", "--quiet") == 0
    return {p.name: p.read_bytes() for p in sorted((out / "reports").iterdir())}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    return full_report(tmp_path_factory.mktemp("tiny"))


SECTIONS = ["# Tiny 2-3-1 network on teacher data", "**Verdict: agree**", "## Set-up", "## Runs",
            "## Agreement, step by step", "## How the difference grows", "## Final parameters (float64)",
            "## Final parameters (float32)", "## The lab's printed values", "## Environment"]


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.strip("#* ").split(" (")[0].lower().replace(" ", "-"))
def test_report_has_section(files, section):
    assert section in files["tiny-mlp.md"].decode()


SET_UP = ["Model: 2 inputs -> 3 sigmoid, 1 linear", "`layers.0.kernel` (2, 3)",
          "Data: 20 x 2 standard normal inputs", "loss `mse`", "optimizer `sgd` lr 0.1",
          "convention: numpy common, keras common, torch common", "batches of 8", "4 epochs",
          "shuffled each epoch (seed 7)", "no early stopping", "float64: rtol 1e-12, atol 1e-14",
          "float32: rtol 1e-05, atol 1e-07", "source: made up for the report tests",
          "numpy-keras | float64", "keras-torch | float32", "python 3.", "torch ", "dtype policy"]


@pytest.mark.parametrize("text", SET_UP)
def test_report_states_set_up_and_results(files, text):
    assert text in files["tiny-mlp.md"].decode()


def test_report_links_its_plots_and_they_are_pngs(files):
    """Each plot is named by its content's hash (a new report never overwrites a plot the old
    markdown shows), and exactly the linked plots are in the folder."""
    md = files["tiny-mlp.md"].decode()
    pngs = sorted(name for name in files if name.endswith(".png"))
    assert [re.sub(r"-[0-9a-f]{12}\.png$", "", name) for name in pngs] == ["tiny-mlp-differences", "tiny-mlp-loss"]
    for name in pngs:
        assert f"![{name}]({name})" in md
        png = files[name]
        assert png.startswith(PNG_SIGNATURE) and name == content_name(name[:-17], png, ".png")
        assert b"Software" not in png and b"tIME" not in png  # nothing that changes between runs
    assert "tiny-mlp.timings.tsv" in files


def test_index_lists_the_scenario(files):
    index = files["README.md"].decode()
    assert "1 scenario: 1 agree" in index
    assert "| tiny-mlp | agree | 6 pairs: 6 agree | all match |" in index and "[tiny-mlp.md](tiny-mlp.md)" in index


def test_index_worst_difference_is_the_fraction_of_the_tolerance_the_verdict_tests(files):
    """The index's worst difference is |a - b| / allowed (the verdict's quantity), so an agreeing
    scenario shows at most 1, whatever the magnitude of its values."""
    row = next(line for line in files["README.md"].decode().splitlines() if line.startswith("| tiny-mlp |"))
    worst = row.split("|")[5].strip()
    number, where = worst.split(" ", 1)
    assert 0 < float(number) <= 1 and re.fullmatch(r"\((numpy|keras|torch)-(keras|torch), float(64|32)\)", where)
    md = files["tiny-mlp.md"].decode()
    assert f"uses {number} of the tolerance" in md  # the summary quotes the same number


# --- a summary first, the rest below the fold -----------------------------------------

def test_report_opens_with_a_plain_summary(files):
    """Right under the verdict, a short lead (the verdict in words and the lab's printed values); the
    whole summary, folded below the plots, says what was compared, the verdict, the closest call
    (pair, quantity, step, fraction of the tolerance) and the lab's printed values."""
    md = files["tiny-mlp.md"].decode()
    lines = md.splitlines()
    verdict = next(i for i, line in enumerate(lines) if line.startswith("**Verdict: "))
    assert lines[verdict + 2] == ("All 6 pairs agree within the tolerance at every step. The reference reproduces "
                                  "the value the lab printed.")
    paragraph = md.split("## The whole summary\n\n", 1)[1].split("\n", 1)[0]
    for text in ("The NumPy reference (numpy), keras and torch each trained the same network",
                 "for 12 training steps, in float64 and float32", "All 6 pairs agree within the tolerance",
                 "The closest call is ", "of the tolerance (|a - b| / allowed, the quantity the verdict tests) at step",
                 "The reference reproduces the value the lab printed"):
        assert text in paragraph, text


def test_a_report_that_agrees_everywhere_fits_on_one_screen(files):
    """Everything long (set-up, the full agreement table, final parameters, lab table, environment)
    is in <details> blocks; what comes before the first one fits in 40 lines."""
    md = files["tiny-mlp.md"].decode()
    above, below = md.split("<details>", 1)
    assert len(above.splitlines()) <= 40
    assert "| pair " in above and "![tiny-mlp-differences-" in above  # the pairs and the plots stay above
    for section in ("## Set-up", "## Agreement, step by step", "## Final parameters (float64)",
                    "## The lab's printed values", "## Environment"):
        assert section not in above and section in below
    assert md.count("<details>") == md.count("</details>") >= 5


def test_report_is_byte_identical_when_run_again(files, tmp_path):
    again = full_report(tmp_path)
    assert sorted(again) == sorted(files)
    for name in again:
        if not name.endswith(".timings.tsv"):  # wall-clock seconds live only there
            assert again[name] == files[name], name


def test_markdown_has_no_timings(files):
    md = files["tiny-mlp.md"].decode()
    assert " s)" not in md and "seconds" not in md


# --- progress and quiet ---------------------------------------------------------

def test_progress_lines_and_quiet(tiny_file, tmp_path, capsys):
    assert report(tiny_file, tmp_path / "loud") == 0
    err = capsys.readouterr().err.splitlines()
    runs = [line for line in err if line.startswith("tiny-mlp x ")]
    assert len(runs) == 6  # 3 frameworks x 2 dtypes
    assert all(line.rstrip().endswith(" s") for line in runs)
    assert report(tiny_file, tmp_path / "quiet", "--quiet") == 0
    assert capsys.readouterr().err == ""


# --- a failed report leaves the previous one in place ---------------------------

def test_failed_report_keeps_previous(tiny_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / "reports"
    assert report(tiny_file, out, "--quiet") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(result):
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(harness.render.file_set, "differences_png", broken)
    assert report(tiny_file, out, "--quiet") == 1
    assert "tiny-mlp: report not written, the previous one is kept (RuntimeError: plotting failed)" in \
        capsys.readouterr().err
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before  # no temporary files left either


# --- crashes and diagnoses in the report ------------------------------------------

def test_crashed_framework_is_shown_beside_the_runs_that_worked(tmp_path):
    s = tiny()
    broken = replace(s, training=replace(s.training, optimizer=replace(s.training.optimizer, name="no-such-opt")))
    result = run_scenario(s, dtypes=("float64",), sides={"keras": broken})
    files = scenario_files(result, diagnose(result))
    md = files["tiny-mlp.md"].decode()
    assert "**Verdict: CRASHED: keras (float64)**" in md
    assert "- **keras (float64) crashed**: ValueError: no Keras optimizer for 'no-such-opt'" in md
    assert "| numpy-torch | float64 |" in md  # the runs that worked are still compared
    assert "Variant: keras runs this scenario with optimizer name 'no-such-opt' (instead of 'sgd')" in md
    write_files_atomic(tmp_path, files)
    assert read_index_entry(tmp_path / "tiny-mlp.md")["verdict"] == "CRASHED: keras (float64)"


def test_diagnosed_report_names_cause_and_control(tmp_path):
    s = tiny()
    faster = replace(s, training=replace(s.training, optimizer=replace(s.training.optimizer, learning_rate=0.2)))
    result = run_scenario(s, frameworks=("numpy", "torch"), dtypes=("float64",), sides={"torch": faster})
    diagnoses = diagnose(result)
    md = scenario_files(result, diagnoses)["tiny-mlp.md"].decode()
    assert "**Verdict: disagree** (pairs: 0 agree, 0 differ, explained, 1 disagree)" in md
    assert "### numpy-torch (float64, disagrees): learning rate" in md
    assert "- First divergence: step 0, `layers.0.kernel`" in md
    assert "the difference appears at `updated layers.0.kernel`" in md
    assert ("Confirmed by the control run numpy vs torch (float64) with learning rate 0.1 on both sides: "
            "agree") in md
    table_rows = [line for line in md.splitlines() if line.startswith("| updated layers.0.kernel ")]
    assert len(table_rows) == 1 and table_rows[0].rstrip().endswith("| yes                |")
    index = index_markdown([index_entry(result, diagnoses)])
    assert "1 disagree (1 with every divergence's cause confirmed by a control run or a measurement)" in index
    assert "| tiny-mlp | disagree | 1 pair: 1 disagree; cause: learning rate |" in index
    lead = md.split("**Verdict: disagree**", 1)[1].split("\n\n", 2)[1]
    assert lead == ("The one pair disagrees: numpy-torch (float64, from step 0). The reference reproduces the "
                    "value the lab printed. Cause: learning rate, confirmed by a control run.")
    paragraph = md.split("## The whole summary\n\n", 1)[1].split("\n", 1)[0]
    assert "The one pair: 1 disagree (numpy-torch in float64 from step 0)." in paragraph
    assert "numpy-torch (float64) first breaks the tolerance at step 0 in `layers.0.kernel`" in paragraph
    assert "Cause: learning rate for numpy-torch (float64), confirmed by a control run." in paragraph


# --- one vocabulary: the top verdict, the table, the headings and the index agree ------------

STATES = ("agree", "differ, explained", "disagree")


def agreement_states(md: str) -> list[str]:
    """The state of each row of the agreement table (its verdict cell starts with the state)."""
    section = md.split("## Agreement, step by step", 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("|")]
    column = rows[0].index("verdict")
    return [next(s for s in STATES if row[column] == s or row[column].startswith(s + ":")) for row in rows[2:]]


def wrong_tanh(self, x):
    return torch.tanh(x) * (1 + 1e-6)


def test_no_report_says_agree_beside_a_pair_that_disagrees(tmp_path, monkeypatch, frameworks_in_process):
    """Reports of an agreeing, an explained (Adam) and a disagreeing (torch's nn.Tanh made wrong)
    scenario: the top verdict is the worst state of the table's pairs, a diagnosis heading never says
    "disagrees" for a pair that agrees or differs, explained, and the index counts the same states."""
    small = (Path(__file__).resolve().parent / "scenarios" / "small-mlp.toml").read_text()
    sgd = 'optimizer = { name = "sgd", learning_rate = 0.05 }'
    texts = {"tiny-mlp": TINY, "small-adam": small.replace('name = "small-mlp"', 'name = "small-adam"').replace(
        sgd, 'optimizer = { name = "adam", learning_rate = 0.01 }')}
    out = tmp_path / "reports"
    for name, text in texts.items():
        (tmp_path / f"{name}.toml").write_text(text)
        assert main(["report", "--scenario", str(tmp_path / f"{name}.toml"), "--out", str(out), "--quiet"]) == 0
    monkeypatch.setattr(torch.nn.Tanh, "forward", wrong_tanh)
    (tmp_path / "small-mlp.toml").write_text(small)
    assert report(tmp_path / "small-mlp.toml", out, "--quiet") == 1
    verdicts = {}
    for name in ("tiny-mlp", "small-adam", "small-mlp"):
        md = (out / f"{name}.md").read_text()
        [top] = re.findall(r"\*\*Verdict: (.+?)\*\*", md)
        states = agreement_states(md)
        assert top == max(states, key=STATES.index), name
        assert not (top == "agree" and "disagree" in states)
        for heading in re.findall(r"^### (\S+) \((float\d\d), (.+?)\): ", md, flags=re.M):
            pair, dtype, words = heading
            assert words in ("disagrees", "differ, explained", "agrees, drifts"), heading
        verdicts[name] = top
    assert verdicts == {"tiny-mlp": "agree", "small-adam": "differ, explained", "small-mlp": "disagree"}
    adam = (out / "small-adam.md").read_text()
    assert "### keras-torch (float64, differ, explained): optimizer convention" in adam
    assert "(float64, disagrees)" not in adam
    assert "differ, explained by Adam epsilon placement" in adam
    assert re.search(r"The explained gap peaks at \S+ in `[^`]+` around step \d+ \(\S+, float\d\d\), while the "
                     r"final weights differ by \S+ \(relative \S+\): the same final parameters to \d+ "
                     r"significant digits\.", adam)
    assert_one_vocabulary(out)
    index = (out / "README.md").read_text()
    assert "3 scenarios: 1 agree in every pair and dtype; 1 differ, explained" in index
    assert "; 1 disagree (" in index
    assert "| small-adam | differ, explained |" in index and "| small-mlp | disagree |" in index
    # the catalogue's coverage closes the index, every cell covered
    coverage = index[index.index("## Coverage"):]
    assert re.search(r"^(\d+) of \1 features of the scenario format are exercised", coverage, re.MULTILINE)
    assert "| optimizer | sgd momentum | `minibatch-momentum`, `minibatch-nesterov` |" in coverage
    assert "**not covered**" not in coverage


def assert_one_vocabulary(folder: Path) -> None:
    """Every report in ``folder``: a top verdict of agree never stands beside a pair called
    "disagrees" (or a row in the disagree state), a control run that could not run is "not
    applicable", never "crashed", and a fraction of the tolerance above 1 is never next to "agree"."""
    reports = [p for p in sorted(folder.glob("*.md")) if p.name != "README.md"]
    assert reports
    for path in reports:
        md = path.read_text()
        [top] = re.findall(r"\*\*Verdict: (.+?)\*\*", md)
        if top == "agree":
            assert "disagrees" not in md and "| disagree" not in md, path.name
        controls = [line for line in md.splitlines() if line.startswith("  - ")]
        assert not any("crashed" in line for line in controls), path.name
        for line in md.splitlines():
            if re.search(r"(: |\(float\d\d, )agree(?!s?, drifts)", line) and "disagree" not in line:
                fractions = re.findall(r"(\d[\d.e+-]*) (?:x|of) (?:the|its) tolerance", line)
                assert all(float(f) <= 1 for f in fractions), line


@pytest.mark.parametrize("folder", ["reports", "reports/backends"])
def test_committed_reports_use_one_vocabulary(folder):
    """The same checks over the reports committed in reports/ and reports/backends/ (the lead
    regenerates them)."""
    assert_one_vocabulary(Path(__file__).resolve().parent.parent / folder)


def test_index_reads_the_verdicts_of_earlier_versions_in_todays_words(tmp_path):
    old = {"name": "old-one", "title": "t", "verdict": "agree (frameworks differ only by optimizer convention)",
           "lab": "-", "worst": "-", "causes": []}
    (tmp_path / "old-one.md").write_text(f"x\n<!-- nn-parity-summary: {json.dumps(old)} -->\n")
    assert read_index_entry(tmp_path / "old-one.md")["verdict"] == "differ, explained"
    old["verdict"], old["name"] = "DISAGREE", "old-two"
    (tmp_path / "old-two.md").write_text(f"x\n<!-- nn-parity-summary: {json.dumps(old)} -->\n")
    assert read_index_entry(tmp_path / "old-two.md")["verdict"] == "disagree"


# --- no path of this machine in any generated file ------------------------------------

def machine_paths() -> list[str]:
    return [str(Path(__file__).resolve().parent.parent), str(Path.home()), str(Path.cwd().resolve())]


def test_no_generated_file_holds_a_path_of_this_machine(tmp_path, capsys):
    """Reports (markdown, PNG, HTML, index) and the run's JSON, from a scenario file outside the
    repository into a folder outside it: no absolute path of the machine in any of them."""
    (tmp_path / "tiny-mlp.toml").write_text(TINY)
    out = tmp_path / "out"
    assert main(["report", "--scenario", str(tmp_path / "tiny-mlp.toml"), "--out", str(out), "--html",
                 "--quiet"]) == 0
    assert main(["run", str(tmp_path / "tiny-mlp.toml"), "--json", str(out / "run.json"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    names = sorted(p.name for p in out.iterdir())
    assert {"tiny-mlp.md", "tiny-mlp.html", "README.md", "index.html", "run.json"} <= set(names)
    for path in out.iterdir():
        data = path.read_bytes()
        for forbidden in [str(tmp_path), *machine_paths()]:
            assert forbidden.encode() not in data, (path.name, forbidden)
    for forbidden in [str(tmp_path / "out"), str(Path.home())]:
        assert forbidden not in printed.split("Verdict: ")[1]  # the terminal's summary, below the verdict
    payload = json.loads((out / "run.json").read_text())
    assert payload["file"] == "tiny-mlp.toml" and payload["summary"].startswith("The NumPy reference (numpy)")
    assert payload["worst"]["used"] <= 1 and payload["worst"]["state"] == "agree"


def test_text_from_anywhere_loses_the_machine_paths():
    """A crash message or a control run naming a file: the working directory becomes ".", the home
    folder "~", the Python installation "(python)" and the temporary folder "(tmp)"."""
    text = (f"ValueError: {Path.cwd().resolve()}/scenarios/x.toml and {Path.home()}/lab.toml, "
            f"{sys.prefix}/lib/site.py, {tempfile.gettempdir()}/pytest-0/y.toml")
    cleaned = without_machine_paths(text)
    assert all(p not in cleaned for p in [str(Path.cwd().resolve()), str(Path.home()), sys.prefix])
    assert "./scenarios/x.toml" in cleaned and "(python)/lib/site.py" in cleaned and "(tmp)/pytest-0/y.toml" in cleaned


# --- plots: gaps where both runs hold inf/nan -------------------------------------------

def test_nonfinite_steps_are_a_gap_and_their_first_step_is_known():
    """Two runs that overflow together: their difference is 0 only because nan == nan; the series
    the plots draw is nan (a gap) there, not an exact 0, and the first such step is reported."""
    losses = np.array([1.0, 2.0, np.inf, np.nan, np.nan])
    params = np.array([[1.0], [2.0], [3.0], [np.nan], [np.nan]])
    a = Trajectory("numpy", "float64", losses=losses, params={"w": params})
    b = Trajectory("torch", "float64", losses=losses.copy(), params={"w": params + np.array([[0], [1e-15], [0], [0],
                                                                                               [0]])})
    c = compare(a, b, Tolerance(rtol=1e-12, atol=1e-14))
    assert c.agree and list(c.step_max_abs[3:]) == [0.0, 0.0]
    result = SimpleNamespace(runs={("numpy", "float64"): a, ("torch", "float64"): b})
    max_abs, used, first = pair_series(result, c)
    assert first == 2
    assert np.isnan(max_abs[3:]).all() and np.isnan(used[3:]).all()
    assert max_abs[1] == pytest.approx(1e-15, rel=0.2) and max_abs[0] == 0.0  # finite zeros are drawn
    assert np.isnan(max_abs[2])  # step 2: the loss inf on both sides, the parameters equal: no finite difference


@pytest.mark.slow
def test_report_takes_the_implementations_to_compare(tiny_file, tmp_path):
    """`report --frameworks`: the report compares those implementations only (here numpy and torch;
    `all` adds Keras on its other backends)."""
    out = tmp_path / "reports"
    assert report(tiny_file, out, "--quiet", "--frameworks", "numpy,torch", "--no-cache") == 0
    md = (out / "tiny-mlp.md").read_text()
    assert "| numpy-torch | float64 |" in md and "| numpy-torch | float32 |" in md
    assert "numpy-keras" not in md and "keras-torch" not in md


def test_each_figure_is_drawn_once(monkeypatch):
    """A report's figure is rendered once: savefig does not draw it a second time for a layout engine
    that ``tight_layout`` already applied (10-20% of the figures' CPU, the report's critical path)."""
    result = run_scenario(tiny(), frameworks=("numpy", "torch"))
    renders: list[Figure] = []
    real = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, renderer: (renders.append(self), real(self, renderer))[1])
    for draw in (plots.loss_curves_png, plots.differences_png):
        before = len(renders)
        assert draw(result) is not None
        assert len(renders) == before + 1, draw.__name__


def test_the_differences_figures_axis_labels_stay_beside_their_own_plots(monkeypatch):
    """Each left y-label of the differences figure is no taller than its plot, so the two never run into
    each other, also where a legend of 15 pairs (Keras on every backend, the control runs) leaves the
    plots short (one line each was longer than the plot is high)."""
    result = run_scenario(tiny(), frameworks=("numpy", "torch"))
    result.comparisons += [replace(c, b=f"{c.b}-{n}") for n in range(14) for c in list(result.comparisons)
                           if c.a == "numpy" and c.b == "torch"]
    drawn: list[tuple[Figure, Any]] = []
    real = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, renderer: (drawn.append((self, renderer)),
                                                                real(self, renderer))[1])
    assert plots.differences_png(result) is not None
    ((fig, renderer),) = drawn
    left = [ax for ax in fig.axes if ax.get_ylabel()]
    assert len(left) == 2
    spans = []
    for ax in left:
        label, plot = ax.yaxis.label.get_window_extent(renderer), ax.get_window_extent(renderer)
        assert plot.y0 - 1 <= label.y0 and label.y1 <= plot.y1 + 1, (ax.get_ylabel(), label, plot)
        spans.append((label.y0, label.y1))
    (low0, high0), (low1, high1) = sorted(spans)
    assert high0 < low1, spans
