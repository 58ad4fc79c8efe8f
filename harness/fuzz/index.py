"""A campaign's index under ``--out``: ``index.md`` and ``index.json`` (``index.html`` with
``--html``), its findings grouped by cause and by suspect, one exemplar (the finding's file) per
fingerprint with its count. No timings: the same campaign gives the same bytes whatever computed
it (``--jobs``, ``--executor``)."""
from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from harness.fuzz.output import FINDINGS, file_name, finding_versions, versions_text
from harness.render.files import write_files_atomic
from harness.render.free_text import free_line
from harness.render.html import markdown_page

if TYPE_CHECKING:
    from harness.fuzz.campaign import Campaign, Record

INDEX = "index"
GROUPS = (("cause", "By cause"), ("suspect", "By suspect"))


def entry(record: Record, found_with: dict[str, str]) -> dict[str, Any]:
    fp = record.fingerprint
    return {"fingerprint": fp.text(), "suspect": fp.suspect, "cause": fp.cause, "dtype": fp.dtype,
            "count": record.count, "file": f"{FINDINGS}/{file_name(record)}", "versions": found_with}


def index(campaign: Campaign) -> dict[str, Any]:
    found_with = finding_versions(campaign.frameworks)
    entries = [entry(r, found_with) for r in sorted(campaign.records.values(), key=lambda r: r.fingerprint)]
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for key, _ in GROUPS:
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in entries:
            groups[e[key]].append(e)
        grouped[f"by_{key}"] = {name: groups[name] for name in sorted(groups)}
    return {"seed": campaign.seed, "budget": campaign.budget(), "frameworks": list(campaign.frameworks),
            "dtypes": list(campaign.dtypes), "versions": found_with, "examples": campaign.examples,
            "outcomes": dict(sorted(campaign.kinds.items())), "findings": len(entries), **grouped}


def markdown(data: dict[str, Any]) -> str:
    outcomes = ", ".join(f"{kind} {n}" for kind, n in data["outcomes"].items()) or "none"
    lines = [f"# nn-parity fuzz: {data['findings']} findings", "",
             f"Seed {data['seed']}, {data['budget']}, {', '.join(data['frameworks'])} in "
             f"{', '.join(data['dtypes'])}: {data['examples']} examples ({outcomes}).",
             f"Found with {versions_text(data['versions'])}.", ""]
    if not data["findings"]:
        lines.append("No finding: every example agrees, differs explained, or is ill-conditioned by nature.")
    for key, title in GROUPS:
        if not data["findings"]:
            break
        lines += [f"## {title}", ""]
        for name, entries in data[f"by_{key}"].items():
            total = sum(e["count"] for e in entries)
            lines += [f"### {free_line(name)} ({total} examples)", "",
                      "| fingerprint | examples | exemplar |", "| --- | --- | --- |"]
            lines += [f"| {free_line(e['fingerprint']).replace('|', '/')} | {e['count']} | "
                      f"[{e['file']}]({e['file']}) |" for e in entries]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_index(campaign: Campaign, *, html: bool = False) -> None:
    data = index(campaign)
    text = markdown(data)
    files = {f"{INDEX}.md": text.encode(), f"{INDEX}.json": (json.dumps(data, indent=1) + "\n").encode()}
    if html:
        files[f"{INDEX}.html"] = markdown_page("nn-parity fuzz", text).encode()
    write_files_atomic(campaign.out, files)
