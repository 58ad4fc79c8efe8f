"""A fuzzing campaign in two passes, both through ``hypothesis.find`` with the same seed:

1. **Search**: ``max_examples`` scenarios drawn from the space (``space.examples``), each judged by
   the harness (``oracle.judge``, in every implementation and dtype); the condition never holds,
   so every example is drawn and counted: one exemplar (the first) per fingerprint, with counts
   and the families that produced it.
2. **Shrink**, per fingerprint: the same search (the same seed draws the same examples; their
   outcomes are remembered, so nothing runs again) whose condition holds when an example has
   that fingerprint; hypothesis then shrinks it to a minimal scenario that keeps the fingerprint,
   each candidate judged in the fingerprint's dtype only. A fingerprint's shrink has a time budget
   (``SHRINK_SECONDS``): past it, candidates not judged yet count as not keeping it. When the
   search does not reach the exemplar again, the exemplar itself is kept, unshrunk.

The shrink passes use the hypothesis database under ``<out>/.hypothesis`` (one key per
fingerprint), so a later campaign tries the earlier minimal examples first.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Callable

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import HypothesisException

from harness.fuzz.fingerprint import Fingerprint
from harness.fuzz.oracle import FINDING, Outcome, judge
from harness.fuzz.space import Example, examples
from harness.fuzz.toml_text import to_toml

SHRINK_SECONDS = 240.0
DATABASE = ".hypothesis"  # under --out

Report = Callable[[str], None]


@dataclass
class Record:
    """One fingerprint: how many examples had it, the families they carried, its first example
    and (after the shrink pass) its minimal one."""

    fingerprint: Fingerprint
    exemplar: Example
    count: int = 0
    families: Counter[str] = field(default_factory=Counter)
    shrunk: Example | None = None
    shrink_seconds: float = 0.0

    @property
    def minimal(self) -> Example:
        return self.shrunk or self.exemplar


@dataclass
class Campaign:
    frameworks: tuple[str, ...]
    dtypes: tuple[str, ...]
    max_examples: int
    seed: int
    out: Path
    examples: int = 0
    seconds: float = 0.0
    kinds: Counter[str] = field(default_factory=Counter)  # outcome kind -> examples
    reasons: Counter[str] = field(default_factory=Counter)  # "ill-conditioned: why" -> examples
    records: dict[Fingerprint, Record] = field(default_factory=dict)
    # (scenario text, dtypes) -> outcome: an example is judged once
    memo: dict[tuple[str, tuple[str, ...]], Outcome] = field(default_factory=dict)

    def _settings(self, *, shrink: bool) -> settings:
        database = DirectoryBasedExampleDatabase(str(self.out / DATABASE)) if shrink else None
        phases = [Phase.reuse, Phase.generate, Phase.shrink] if shrink else [Phase.generate]
        return settings(max_examples=self.max_examples, deadline=None, database=database, phases=phases,
                        suppress_health_check=list(HealthCheck), derandomize=False)

    def judged(self, example: Example, dtypes: tuple[str, ...]) -> Outcome:
        key = (to_toml(example.raw), dtypes)
        if key not in self.memo:
            self.memo[key] = judge(example, frameworks=self.frameworks, dtypes=dtypes)
        return self.memo[key]

    def search(self, report: Report | None = None) -> None:
        """Pass 1 (module docstring)."""
        start = time.perf_counter()

        def condition(example: Example) -> bool:
            outcome = self.judged(example, self.dtypes)
            self.examples += 1
            self.kinds[outcome.kind] += 1
            if outcome.reason:
                self.reasons[f"{outcome.kind}: {outcome.reason}"] += 1
            for fp in sorted(outcome.fingerprints):
                record = self.records.setdefault(fp, Record(fp, example))
                record.count += 1
                record.families.update(example.families or ("plain",))
            if report is not None:
                what = outcome.kind if outcome.kind != FINDING else \
                    "finding: " + "; ".join(fp.text() for fp in sorted(outcome.fingerprints))
                report(f"example {self.examples}/{self.max_examples}: {what}")
            self.seconds = time.perf_counter() - start
            return False

        try:
            find(examples(self.frameworks), condition, settings=self._settings(shrink=False), random=Random(self.seed))
        except HypothesisException:  # NoSuchExample: every example was drawn, none "found"
            pass
        self.seconds = time.perf_counter() - start

    def shrink(self, record: Record, report: Report | None = None) -> None:
        """Pass 2 for one fingerprint (module docstring)."""
        fp = record.fingerprint
        dtypes = (fp.dtype,) if fp.dtype in self.dtypes else self.dtypes
        start = time.perf_counter()
        deadline = time.monotonic() + SHRINK_SECONDS

        def condition(example: Example) -> bool:
            text = to_toml(example.raw)
            known = self.memo.get((text, dtypes)) or self.memo.get((text, self.dtypes))
            if known is None:
                if time.monotonic() > deadline:
                    return False
                known = self.judged(example, dtypes)
            return fp in known.fingerprints

        try:
            record.shrunk = find(examples(self.frameworks), condition, settings=self._settings(shrink=True),
                                 random=Random(self.seed), database_key=f"nn-parity-fuzz:{fp.text()}".encode())
        except HypothesisException:  # not reached again (or flaky): the exemplar stays, unshrunk
            record.shrunk = None
        record.shrink_seconds = time.perf_counter() - start
        if report is not None:
            report(f"shrunk {fp.text()} in {record.shrink_seconds:.0f} s"
                   + ("" if record.shrunk else " (not reached again: the first example is kept)"))

    @property
    def examples_per_hour(self) -> float:
        return 3600.0 * self.examples / self.seconds if self.seconds > 0 else 0.0
