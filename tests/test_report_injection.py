"""Text a scenario file supplies is text in every report (issue 25, item 1): a title, a
description, a source and a file name holding raw HTML, a comment opener or closer, markdown
links to ``javascript:`` and markdown blocks reach the page and the markdown as inert text.

A real ``nn-parity report --html`` of a real file with every injection, beside the same scenario
with plain text: parsed with ``html.parser``, the hostile page has exactly the clean page's scripts
(plotly's, which the harness writes), the same elements and comments, no ``on*`` attribute and no
``javascript:`` URL; each injection shows as text. The markdown opens and closes the same blocks.
"""
from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.commands.cli import main
from harness.render.free_text import free_text, safe_link
from harness.render.header import read_index_entry
from harness.render.html import markdown_to_html

TINY = (Path(__file__).resolve().parent / "scenarios" / "tiny-mlp.toml").read_text()
TITLE = "Evil --> <script>alert(1)</script> <img src=x onerror=alert(2)> --!> [t](javascript:alert(0))"
DESCRIPTION = r"""<img src=x onerror=alert(3)>
<details><summary>opened by the file</summary>
</details>
<!-- a comment the file opens
[click](javascript:alert(4)) and [case](JaVaScRiPt:alert(5)) and [data](data:text/html,x)
[quote](https://example.org/"onmouseover="alert&#40;7&#41;) and [fine](https://example.org/page)
![img](javascript:alert(8))
[ref]: javascript:alert(9)
<a href="javascript:alert(10)">a</a> <svg onload=alert(11)> &#106;avascript:alert(12)
# a heading from the file
| a | table |
|---|---|
```
a fence that would swallow the rest
-->
- a list item stays one
\<script>alert(13)</script>"""
SOURCE = "<script>alert(14)</script> -->"
INJECTIONS = ("<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "<img src=x onerror=alert(3)>",
              "<details><summary>opened by the file</summary>", "<!-- a comment the file opens",
              "[click](javascript:alert(4))", "<svg onload=alert(11)>", "<script>alert(14)</script> -->")


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class Page(HTMLParser):
    """Every start tag with its attributes, every script's text, every comment, all the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.scripts: list[str] = []
        self.comments: list[str] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def report(folder: Path, file_name: str, scenario: str) -> Path:
    folder.mkdir()
    (folder / file_name).write_text(scenario)
    out = folder / "reports"
    assert main(["report", "--scenario", str(folder / file_name), "--out", str(out), "--quiet", "--html",
                 "--frameworks", "numpy,torch", "--no-cache"]) == 0
    return out


@pytest.mark.slow
def test_every_injection_is_text_in_the_page_and_the_markdown(tmp_path: Path) -> None:
    hostile = TINY.replace('title = "Tiny 2-3-1 network on teacher data"', f"title = {_toml_string(TITLE)}") \
        .replace('source = "made up for the report tests"', f"source = {_toml_string(SOURCE)}") \
        .replace('description = "Twenty teacher points, shuffled batches of 8."',
                 f"description = {_toml_string(DESCRIPTION)}")
    assert hostile.count("alert(") == 13  # every one planted (7 is written alert&#40;7&#41;)
    clean_out = report(tmp_path / "clean", "tiny-mlp.toml", TINY)
    out = report(tmp_path / "hostile", "<img src=x onerror=alert(15)>.toml", hostile)
    clean, page = parse((clean_out / "tiny-mlp.html").read_text()), parse((out / "tiny-mlp.html").read_text())

    assert page.scripts == clean.scripts and len(page.scripts) >= 2  # plotly's library and plots: the harness's
    # the description's paragraphs, its list item and its two https links are the only elements it adds
    added = Counter(tag for tag, _ in page.tags) - Counter(tag for tag, _ in clean.tags)
    assert set(added) <= {"p", "li", "ul", "a"} and added["a"] == 2, added
    assert not Counter(tag for tag, _ in clean.tags) - Counter(tag for tag, _ in page.tags)
    # the same comments, whole: the title inside the summary's closes nothing
    assert [c[:len(" nn-parity-summary: ")] for c in page.comments] == [c[:len(" nn-parity-summary: ")]
                                                                        for c in clean.comments]
    for tag, attrs in page.tags:
        for name, value in attrs:
            assert not name.lower().startswith("on"), (tag, name, value)
            assert not re.sub(r"[\x00-\x20]", "", value or "").lower().startswith(("javascript:", "data:text")), \
                (tag, name, value)
    text = "".join(page.text)
    for injection in INJECTIONS:
        assert injection in text, injection
    assert '<a href="https://example.org/page">fine</a>' in (out / "tiny-mlp.html").read_text()

    md, clean_md = (out / "tiny-mlp.md").read_text(), (clean_out / "tiny-mlp.md").read_text()
    for block in ("<details>", "</details>", "<summary>", "<!--", "-->", "```"):
        assert md.count(block) == clean_md.count(block), block
    assert re.search(r"\\\[click\]\(javascript:", md)  # the link is text: its [ escaped
    body = md.split("\n", 2)[2]  # below the two comments
    assert not re.search(r"(?<!\\)\[[^\[\]]*\]\(\s*javascript:", body, flags=re.I)
    description = md[md.index("## Set-up\n\n") + 11:md.index("\n- Model: ")]
    assert description.count("\n") == DESCRIPTION.count("\n") + 1  # line for line, with its blank line
    assert not re.search(r"^\s*(#|\||```|<|!\[|\[[^\]]*\]:)", description, flags=re.M)  # no line opens a block
    summary = read_index_entry(out / "tiny-mlp.md")
    assert summary is not None and summary["title"] == TITLE  # the comment holds it whole, unbroken


def test_a_link_is_kept_only_to_a_safe_target() -> None:
    assert safe_link("https://example.org") and safe_link("mailto:a@b.c") and safe_link("other.html")
    assert not any(safe_link(t) for t in ("javascript:alert(1)", " JavaScript:x", "data:text/html,x", "vbscript:x"))
    page = markdown_to_html(free_text("[a](javascript:alert(1)) [b](https://example.org)"), images={})
    assert page == '<p>[a](javascript:alert(1)) <a href="https://example.org">b</a></p>'
