"""`nn-parity report --html`: pages that need no network, only their folder (plotly's JavaScript is one
shared file of the folder, the PNGs the report's own files, both loaded by relative paths), each under
300 KB, interactive plots holding the runs' numbers, no path of this machine, the same bytes from the
same inputs; markdown stays the default."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from harness.commands.cli import main
from harness.pipeline import diagnose
from harness.render.file_set import scenario_files
from harness.render.html import POINTS_PER_FIGURE, markdown_to_html, plotly_script, thinned

PAGE_LIMIT = 300 * 1024  # an LMS upload (issue 22, item 8)

TINY = (Path(__file__).resolve().parent / "scenarios" / "tiny-mlp.toml").read_text()


def html_report(folder: Path, *extra: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny-mlp.toml").write_text(TINY)
    out = folder / "reports"
    assert main(["report", "--scenario", str(folder / "tiny-mlp.toml"), "--out", str(out), "--quiet", *extra]) == 0
    return out


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("html")
    return folder, html_report(folder, "--html")


@pytest.mark.slow
def test_pages_are_written_beside_the_markdown(pages):
    _, out = pages
    names = {p.name for p in out.iterdir()}
    assert {"tiny-mlp.md", "README.md", "tiny-mlp.html", "index.html"} <= names
    index = (out / "index.html").read_text()
    assert '<a href="tiny-mlp.html">tiny-mlp.html</a>' in index and "<td>agree</td>" in index


@pytest.mark.slow
def test_a_page_needs_no_network_only_its_folder(pages):
    """No script, image or stylesheet is loaded from outside the folder: the one script a page loads
    is the folder's copy of plotly's JavaScript, by a relative path, and its images are the report's
    PNGs beside it; no src or href of the page's markup points at http(s) or an absolute path."""
    _, out = pages
    for name in ("tiny-mlp.html", "index.html"):
        page = (out / name).read_text()
        sources = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page, flags=re.I)
        for source in sources:
            assert not re.match(r"([a-z][a-z0-9+.-]*:|/|\\)", source, flags=re.I), (name, source)
            assert (out / source).is_file(), (name, source)  # every file a page loads is in the folder
        markup = re.sub(r"<script>.*?</script>", "<script></script>", page, flags=re.S)
        assert not re.search(r"""<link[^>]*stylesheet""", markup, flags=re.I), name
        assert not re.search(r"@import|url\(", markup), name
    page = (out / "tiny-mlp.html").read_text()
    assert page.count("Plotly.newPlot(") == 2  # the loss and the differences plots
    assert re.findall(r"<script[^>]*\ssrc\s*=[^>]*>", page) == [f'<script src="{plotly_script()}">']
    assert "window.PlotlyConfig" not in page and "plotly.js v" not in page  # the library is not inlined
    assert (out / plotly_script()).stat().st_size > 1_000_000  # it is the folder's shared file
    markup = re.sub(r"<script>.*?</script>", "", page, flags=re.S)
    pngs = re.findall(r'<img alt="(tiny-mlp-[^"]+)" src="([^"]+)">', markup)
    assert len(pngs) == 2 and all(alt == src and src.endswith(".png") for alt, src in pngs)
    assert "data:image" not in page and len(page.encode()) < PAGE_LIMIT


@pytest.mark.parametrize("catalogue_result", ["sigmoid-exponential-adam"], indirect=True, scope="session")
def test_the_largest_catalogue_page_is_under_300_kb(catalogue_result):
    """The catalogue's largest page (5000 steps, 8 runs, 8 pairs; 6.8 MB when plotly's library and the
    PNGs were inlined) is under 300 KB, and its plots still hold the peak of every series."""
    files = scenario_files(catalogue_result, diagnose(catalogue_result), html=True)
    page = files["sigmoid-exponential-adam.html"]
    assert len(page) < PAGE_LIMIT, len(page)
    assert page.count(b"Plotly.newPlot(") == 2
    text = page.decode()
    steps = max(c.step_max_abs.size for c in catalogue_result.comparisons)
    assert steps == 5000 and '"x":[0,' in text and f",{steps - 1}]" in text  # first and last step kept


def test_thinned_series_keep_every_peak_and_every_gap():
    """A long series keeps, per bucket of steps, its smallest and largest value (so a one-step spike
    survives), its first and last step, and a gap where a bucket holds only inf/nan."""
    values = np.linspace(1.0, 2.0, 10_000)
    values[4321] = 1e6  # a spike
    values[7000:7100] = np.nan  # a gap
    steps, shown = thinned(values, 400)
    assert len(steps) <= 402 and steps[0] == 0 and steps[-1] == 9999 and steps == sorted(set(steps))
    assert 4321 in steps and shown[steps.index(4321)] == 1e6
    assert any(7000 <= k < 7100 and v is None for k, v in zip(steps, shown))
    short = np.array([3.0, np.inf, 1.23456789])
    assert thinned(short, 400) == ([0, 1, 2], [3.0, None, 1.235])
    assert POINTS_PER_FIGURE * 30 < PAGE_LIMIT  # a point costs at most ~30 bytes of JSON (x, y, commas)


@pytest.mark.slow
def test_the_interactive_plots_hold_the_runs_numbers(pages):
    """The plot data is in the page: every pair with its state, and the first loss of the run."""
    _, out = pages
    page = (out / "tiny-mlp.html").read_text()
    payload = json.loads((out / "tiny-mlp.md").read_text().splitlines()[1][len("<!-- nn-parity-summary: "):-4])
    assert payload["verdict"] == "agree"
    for pair in ("numpy-keras", "numpy-torch", "keras-torch"):
        for dtype in ("float64", "float32"):
            assert f'"name":"{pair} ({dtype}): agree"' in page
    assert '"name":"numpy (float64)"' in page and '"name":"torch (float32)"' in page
    traces = re.findall(r'"name":"numpy \(float64\)".*?"y":\[([^\]]*)\]', page)
    assert traces and len(traces[0].split(",")) == 12  # one loss per step
    assert "Tiny 2-3-1 network on teacher data" in page and "<details>" in page and "<table>" in page


@pytest.mark.slow
def test_pages_hold_no_machine_path_and_are_deterministic(pages, tmp_path):
    folder, out = pages
    again = html_report(tmp_path, "--html")
    for name in ("tiny-mlp.html", "index.html"):
        data = (out / name).read_bytes()
        for forbidden in (str(folder), str(tmp_path), str(Path(__file__).resolve().parent.parent), str(Path.home())):
            assert forbidden.encode() not in data, (name, forbidden)
        assert (again / name).read_bytes() == data, name


@pytest.mark.slow
def test_markdown_stays_the_default_and_a_stale_page_goes(tmp_path):
    """Without --html no page is written; a report regenerated without --html removes its old page
    (it would contradict the new markdown), and index.html no longer links it."""
    out = html_report(tmp_path)
    assert not list(out.glob("*.html"))
    html_report(tmp_path, "--html")
    assert (out / "tiny-mlp.html").is_file() and "tiny-mlp.html" in (out / "index.html").read_text()
    html_report(tmp_path)
    assert not (out / "tiny-mlp.html").exists() and "tiny-mlp.html" not in (out / "index.html").read_text()


def test_markdown_subset_becomes_html():
    md = "\n".join([
        "# Title", "", "Some `code` and **bold** & <tags>.", "", "| a | b |", "|:--|:--|", "| 1 | `x` |", "",
        "- one", "  - nested", "- two", "", "<details>", "<summary>More</summary>", "", "## Inside", "", "</details>",
        "![plot.png](plot.png)"])
    html = markdown_to_html(md, images={"plot.png": "<div>PLOT</div>"})
    assert "<h1>Title</h1>" in html
    assert "<p>Some <code>code</code> and <strong>bold</strong> &amp; &lt;tags&gt;.</p>" in html
    assert "<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td><td><code>x</code></td>" in html
    assert "<ul><li>one</li><ul><li>nested</li></ul><li>two</li></ul>" in html
    assert "<details>\n<summary>More</summary>\n<h2>Inside</h2>\n</details>" in html
    assert html.endswith("<div>PLOT</div>")
