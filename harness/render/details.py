"""The report's folded block: ``<details>`` whose ``<summary>`` (escaped as HTML text) is also the
heading inside it, so a reader who unfolds it, and a markdown viewer that shows it unfolded, see the
same title."""
from __future__ import annotations

import html


def folded(title: str, body: list[str], *, level: int = 2) -> list[str]:
    """A block below the fold: ``<details>`` with its heading (``level`` ``#`` signs) inside."""
    summary = html.escape(title, quote=False)
    return ["<details>", f"<summary>{summary}</summary>", "", f"{'#' * level} {title}", "", *body, "</details>", ""]
