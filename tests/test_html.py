"""`nn-parity report --html`: self-contained pages (no network at view time: plotly's JavaScript and
the PNGs inlined), interactive plots holding the runs' numbers, no path of this machine, the same
bytes from the same inputs; markdown stays the default."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.commands.cli import main
from harness.render.html import markdown_to_html

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
def test_a_page_needs_no_network(pages):
    """No script, image or stylesheet is loaded from anywhere: plotly's JavaScript is inlined once, the
    PNGs are data URIs, and no src or href of the page's markup points at http(s) (the inlined library
    holds link targets of its own, e.g. its logo's, which load nothing)."""
    _, out = pages
    for name in ("tiny-mlp.html", "index.html"):
        page = (out / name).read_text()
        assert not re.search(r"""<script[^>]*\ssrc\s*=""", page, flags=re.I), name
        markup = re.sub(r"<script>.*?</script>", "<script></script>", page, flags=re.S)
        assert not re.search(r"""\b(src|href)\s*=\s*["']?\s*(https?:)?//""", markup, flags=re.I), name
        assert not re.search(r"""<link[^>]*stylesheet""", markup, flags=re.I), name
        assert not re.search(r"@import|url\(", markup), name
    page = (out / "tiny-mlp.html").read_text()
    assert page.count("Plotly.newPlot(") == 2  # the loss and the differences plots
    assert page.count("window.PlotlyConfig") == 1  # the library, inlined once
    markup = re.sub(r"<script>.*?</script>", "", page, flags=re.S)
    assert markup.count('<img alt="tiny-mlp-') == markup.count('src="data:image/png;base64,') == 2


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
