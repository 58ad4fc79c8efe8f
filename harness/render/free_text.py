"""Text a file supplies (a scenario's ``title``, ``description``, ``source``), made inert in the
reports: in the markdown it never opens or closes a block and carries no markup but paragraphs,
``- `` list items, `code`, **bold** and links to http(s), mailto or a relative target; in the HTML
page (``harness.render.html``) it is text.

- ``&``, ``<``, ``>`` become entities: no raw HTML (``<details>``, ``<img onerror=...>``, ``<!--``).
- A line cannot start a block: a heading, a table, a code fence, a quote, a setext underline, a
  numbered or ``*``/``+`` list (its first mark is backslash-escaped); every ``|`` is escaped (no table).
- A ``[`` that does not open a link to a safe target is escaped, so ``[x](javascript:...)``, images
  and reference definitions (``[1]: javascript:...``) are text.
- Control characters other than newline and tab are dropped.
- ``comment_json``: JSON for an HTML comment; ``<``, ``>`` and ``&`` as ``\\u003c``... so that no
  value (a title holding ``-->``) can end the comment.
"""
from __future__ import annotations

import json
import re
from typing import Any

SAFE_SCHEMES = ("http", "https", "mailto")
_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.\-]*):")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029]")
# a line that would start a block: heading, quote, fence, table, setext or thematic break, list
_BLOCK_START = re.compile(r"^(\s*)(#|>|```|~~~|\||=|-{2,}|-\s*$|\*|\+|_{3,}|\d{1,9}[.)])")
LINK = re.compile(r"\[([^\[\]]+)\]\(([^()\s]+)\)")


def safe_link(target: str) -> bool:
    """Whether a link target may be a link: a relative one (no scheme) or http, https, mailto."""
    scheme = _SCHEME.match(target)
    return scheme is None or scheme[1].lower() in SAFE_SCHEMES


def free_text(text: str) -> str:
    """``text`` (several lines) as inert markdown (see the module docstring)."""
    return "\n".join(_line(line) for line in _CONTROL.sub("", text).splitlines())


def free_line(text: str) -> str:
    """``text`` on one line (whitespace runs, newlines included, become one space), inert markdown."""
    return _line(" ".join(_CONTROL.sub("", text).split()))


def comment_json(value: Any) -> str:
    """``json.dumps(value, sort_keys=True)`` that cannot end an HTML comment (and reads back the same)."""
    return (json.dumps(value, sort_keys=True).replace("&", "\\u0026").replace("<", "\\u003c")
            .replace(">", "\\u003e"))


def _line(line: str) -> str:
    line = line.replace("\\", "\\\\").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    line = line.replace("|", "\\|").replace("`" * 3, "\\`\\`\\`")
    line = _escape_brackets(line)
    block = _BLOCK_START.match(line)
    if block:  # "- item" is no match: a list item stays one
        line = f"{block[1]}\\{line[len(block[1]):]}"
    return line


def _escape_brackets(line: str) -> str:
    """Every ``[`` escaped but those opening ``[text](target)`` with a safe target."""
    out, pos = [], 0
    for m in LINK.finditer(line):
        out.append(line[pos:m.start()].replace("[", "\\["))
        out.append(m[0] if safe_link(m[2]) else m[0].replace("[", "\\[", 1))
        pos = m.end()
    out.append(line[pos:].replace("[", "\\["))
    return "".join(out)
