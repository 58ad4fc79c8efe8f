"""``nn-parity fuzz --replay DIR``: the saved findings of an earlier campaign run again, and only
them (the regression check after a framework upgrade). ``DIR`` is a campaign's ``--out`` (its
``findings/``) or a folder of finding files; each file is loaded by the scenario loader (a bad
one is bad input, exit 2) and judged by the same oracle as the campaign, in ``--frameworks`` and
``--dtype``. A file whose example is still a finding (its saved fingerprint or another) is named
with what is found now; exit 1 when any is."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import BadInput
from harness.fuzz.batch import judge_all
from harness.fuzz.fingerprint import Fingerprint
from harness.fuzz.oracle import FINDING, Outcome
from harness.fuzz.output import FINDINGS, TITLE
from harness.fuzz.space import Example
from harness.spec.fields import read_toml
from harness.spec.scenario import parse_scenario


@dataclass(frozen=True)
class Replayed:
    file: str  # relative to DIR: findings/<slug>.toml
    saved: Fingerprint | None  # what the campaign found (from the file's title), None if it says none
    now: Outcome

    @property
    def still_found(self) -> bool:
        return self.now.kind == FINDING

    def line(self) -> str:
        if self.still_found:
            same = self.saved is not None and self.saved in self.now.fingerprints
            found = "; ".join(fp.text() for fp in sorted(self.now.fingerprints))
            return f"still found: {self.file}: {found}" + ("" if same else " (not the saved fingerprint)")
        what = self.now.kind + (f" ({self.now.reason})" if self.now.reason else "")
        return f"no longer found: {self.file}: {what}"


def finding_files(folder: Path) -> list[Path]:
    """The finding files under ``folder`` (a campaign's ``--out`` or its ``findings/``), sorted;
    ``BadInput`` when there is none."""
    if not folder.is_dir():
        raise BadInput(folder, "--replay", "a campaign's --out folder or a folder of finding files", "no such folder")
    where = folder / FINDINGS if (folder / FINDINGS).is_dir() else folder
    files = sorted(where.glob("*.toml"))
    if not files:
        raise BadInput(folder, "--replay", f"finding files ({FINDINGS}/*.toml or *.toml)", "none")
    return files


def saved_fingerprint(title: object) -> Fingerprint | None:
    if not isinstance(title, str) or not title.startswith(TITLE):
        return None
    parts = title.removeprefix(TITLE).split(" / ")
    return Fingerprint(*parts) if len(parts) == 5 else None


def earlier_findings(out: Path) -> list[Example]:
    """The examples of ``<out>/findings/*.toml`` an earlier campaign wrote (none: an empty list;
    a file the loader refuses is bad input, as in ``replay``)."""
    if not (out / FINDINGS).is_dir() or not any((out / FINDINGS).glob("*.toml")):
        return []
    return [e for _, e in _loaded(finding_files(out))]


def _loaded(files: list[Path]) -> list[tuple[Path, Example]]:
    out = []
    for path in files:
        raw = read_toml(path, what="finding file")
        parse_scenario(raw, path=path)  # a bad file: one line naming it, its field and what was expected
        out.append((path, Example(raw, families=())))
    return out


def replay(folder: Path, *, frameworks: tuple[str, ...], dtypes: tuple[str, ...],
           max_bytes: int | None = None) -> list[Replayed]:
    loaded = _loaded(finding_files(folder))
    judged = judge_all([e for _, e in loaded], frameworks=frameworks, dtypes=dtypes, max_bytes=max_bytes)
    return [Replayed(path.relative_to(folder).as_posix(), saved_fingerprint(e.raw.get("title")), j.outcome)
            for (path, e), j in zip(loaded, judged)]
