"""A fuzzing campaign: a seeded phase, a guided phase, then one shrink per fingerprint.

0. **Replayed**: the findings an earlier campaign left under the same ``--out`` are judged first
   (``replay.earlier_findings``), so a second campaign says at once which still hold.
1. **Seeded phase** (``1 - GUIDED_SHARE`` of the budget): example ``i`` is drawn from its own seed,
   a function of the campaign's seed and ``i`` alone (``draw``), so the examples are drawn in
   batches and judged through the shared executor (``batch.judge_all``: ``--jobs``, Ray) and the
   counts, exemplars and files are the same whatever computes them. One exemplar (the first by
   index) per fingerprint, with counts and the families that produced it.
2. **Guided phase** (``GUIDED_SHARE``): one hypothesis search seeded from the campaign's seed,
   with ``hypothesis.target()`` on the worst fraction of its tolerance a pair (not explained)
   used, and on the step where such a pair first diverges. Targeting needs one search that
   learns from every score it saw, so its examples are *not* per-example seeded: the phase is a
   function of (seed, code) as a whole, judged one example at a time (its runs still through the
   executor), and its results depend on the seeded phase's only through nothing: it starts afresh.
3. **Shrink**, per fingerprint: the search that drew its exemplar is made again (the example's own
   seeded search, or the guided search; outcomes are remembered, nothing runs twice) with the
   condition "this example has this fingerprint", and hypothesis shrinks the first such example to
   a minimal one that keeps it, each candidate judged in the fingerprint's dtype only, within
   ``SHRINK_CANDIDATES`` new candidates (a count: the same shrink wherever it runs) and, as a guard,
   ``SHRINK_SECONDS``: past either, candidates not judged yet count as not keeping it (a shrink cut
   by the seconds may end elsewhere on a faster machine). Before that, the minimal examples an
   earlier campaign saved for the fingerprint in the hypothesis database ``<out>/.hypothesis`` are
   tried first (``Phase.reuse``). When neither reaches it, the exemplar is kept, unshrunk.

``--examples N`` gives the seeded phase ``N - floor(N x GUIDED_SHARE)`` examples and the guided
phase the rest; ``--time T`` gives the seeded phase ``(1 - GUIDED_SHARE) x T`` and the guided phase
as many examples as the seeded phase's rate fits in the rest of ``T`` (it stops at ``T``). The
shrinks come after either budget.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Protocol

from hypothesis import Phase, find, settings, target
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import HypothesisException
from hypothesis.strategies import SearchStrategy

from harness.fuzz.batch import BATCH, Judged, judge_all
from harness.fuzz.draw import derived_seed, draw, search_settings
from harness.fuzz.fingerprint import Fingerprint
from harness.fuzz.oracle import FINDING
from harness.fuzz.replay import earlier_findings
from harness.fuzz.space import Example, examples
from harness.fuzz.toml_text import to_toml

SHRINK_SECONDS = 240.0
SHRINK_CANDIDATES = 400  # new candidates judged per fingerprint: the shrink's deterministic budget
GUIDED_SHARE = 0.25
DATABASE = ".hypothesis"  # under --out
REPLAYED, SEEDED, GUIDED = "replayed", "seeded", "guided"
GUIDED_INDEX = -1  # the guided search's seed is derived_seed(seed, GUIDED_INDEX)
WORST_LABEL, DIVERGENCE_LABEL = "worst fraction of the tolerance used", "first divergent step"


class Reporter(Protocol):
    """Where a campaign says what it does (the command's progress bar or lines)."""

    def example(self, campaign: Campaign, what: str) -> None: ...

    def note(self, line: str) -> None: ...


@dataclass
class Record:
    """One fingerprint: how many examples had it, the families they carried, its first example
    (``origin``: the phase and index that drew it) and (after the shrink pass) its minimal one."""

    fingerprint: Fingerprint
    exemplar: Example
    origin: tuple[str, int] = (SEEDED, 0)
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
    seed: int
    out: Path
    max_examples: int | None = 100  # None: --time decides
    time_limit: float | None = None  # seconds (--time)
    max_bytes: int | None = None  # --max-memory
    strategy: SearchStrategy[Example] | None = None  # --space (None: the whole space)
    examples: int = 0
    seconds: float = 0.0
    phases: Counter[str] = field(default_factory=Counter)  # phase -> examples judged in it
    kinds: Counter[str] = field(default_factory=Counter)  # outcome kind -> examples
    reasons: Counter[str] = field(default_factory=Counter)  # "ill-conditioned: why" -> examples
    records: dict[Fingerprint, Record] = field(default_factory=dict)
    guided_budget: int = 0  # the guided search's max_examples, once known
    # (scenario text, dtypes) -> judged: an example is judged once
    memo: dict[tuple[str, tuple[str, ...]], Judged] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.strategy is None:
            self.strategy = examples(self.frameworks)

    @property
    def space(self) -> SearchStrategy[Example]:
        assert self.strategy is not None
        return self.strategy

    def budget(self) -> str:
        """The campaign's budget as its options say it."""
        return f"--examples {self.max_examples}" if self.max_examples is not None else f"--time {self.time_limit:g}s"

    def judged_all(self, drawn: list[Example], dtypes: tuple[str, ...]) -> list[Judged]:
        keys = [(to_toml(e.raw), dtypes) for e in drawn]
        todo = {k: e for k, e in zip(keys, drawn) if k not in self.memo}
        for k, j in zip(todo, judge_all(list(todo.values()), frameworks=self.frameworks, dtypes=dtypes,
                                        max_bytes=self.max_bytes)):
            self.memo[k] = j
        return [self.memo[k] for k in keys]

    def _count(self, example: Example, judged: Judged, origin: tuple[str, int], reporter: Reporter | None) -> None:
        outcome = judged.outcome
        self.examples += 1
        self.phases[origin[0]] += 1
        self.kinds[outcome.kind] += 1
        if outcome.reason:
            self.reasons[f"{outcome.kind}: {outcome.reason}"] += 1
        for fp in sorted(outcome.fingerprints):
            record = self.records.setdefault(fp, Record(fp, example, origin))
            record.count += 1
            record.families.update(example.families or ("plain",))
        if reporter is not None:
            reporter.example(self, outcome.kind if outcome.kind != FINDING else
                             "finding: " + "; ".join(fp.text() for fp in sorted(outcome.fingerprints)))

    def search(self, reporter: Reporter | None = None) -> None:
        """The seeded phase, then the guided phase (module docstring)."""
        start = time.perf_counter()
        try:
            self._replayed(reporter)
            self._seeded(start, reporter)
            self._guided(start, reporter)
        finally:
            self.seconds = time.perf_counter() - start

    def _replayed(self, reporter: Reporter | None) -> None:
        """An earlier campaign's findings under the same ``--out``, judged first (``replay``)."""
        found = earlier_findings(self.out)
        for k, (example, judged) in enumerate(zip(found, self.judged_all(found, self.dtypes))):
            self._count(example, judged, (REPLAYED, k), reporter)

    def _seeded(self, start: float, reporter: Reporter | None) -> None:
        if self.max_examples is not None:
            total = self.max_examples - math.floor(self.max_examples * GUIDED_SHARE)
            more = lambda i: i < total  # noqa: E731
        else:
            assert self.time_limit is not None
            stop = start + self.time_limit * (1 - GUIDED_SHARE)
            total = None
            more = lambda i: time.perf_counter() < stop  # noqa: E731
        i = 0
        while more(i):
            n = BATCH if total is None else min(BATCH, total - i)
            drawn = [draw(self.space, self.seed, j) for j in range(i, i + n)]
            for j, (example, judged) in enumerate(zip(drawn, self.judged_all(drawn, self.dtypes)), start=i):
                self._count(example, judged, (SEEDED, j), reporter)
            i += n
            self.seconds = time.perf_counter() - start

    def _guided(self, start: float, reporter: Reporter | None) -> None:
        if self.max_examples is not None:
            self.guided_budget = math.floor(self.max_examples * GUIDED_SHARE)
            stop = math.inf
        else:
            assert self.time_limit is not None
            elapsed = max(time.perf_counter() - start, 1e-9)
            self.guided_budget = max(1, round(self.phases[SEEDED] / elapsed * self.time_limit * GUIDED_SHARE))
            stop = start + self.time_limit
        if self.guided_budget < 1:
            return
        calls = [0]

        def condition(example: Example) -> bool:
            key = (to_toml(example.raw), self.dtypes)
            if key not in self.memo and time.perf_counter() > stop:
                return False  # --time is over: the rest of the search is drawn, not judged
            [judged] = self.judged_all([example], self.dtypes)
            self._count(example, judged, (GUIDED, calls[0]), reporter)
            calls[0] += 1
            self.seconds = time.perf_counter() - start
            guide(judged)
            return False

        try:
            find(self.space, condition, settings=self._guided_settings(), random=Random(self._guided_seed()))
        except HypothesisException:  # NoSuchExample: every example was drawn, none "found"
            pass

    def _guided_seed(self) -> int:
        return derived_seed(self.seed, GUIDED_INDEX)

    def _guided_settings(self, **overrides: object) -> settings:
        return search_settings(**{"max_examples": self.guided_budget, "phases": [Phase.generate, Phase.target],
                                  **overrides})

    def shrink(self, record: Record, reporter: Reporter | None = None) -> None:
        """The shrink of one fingerprint (module docstring)."""
        fp = record.fingerprint
        dtypes = (fp.dtype,) if fp.dtype in self.dtypes else self.dtypes
        start = time.perf_counter()
        deadline = time.monotonic() + SHRINK_SECONDS
        phase, index = record.origin
        judged = [0]

        def has_it(example: Example) -> bool:
            text = to_toml(example.raw)
            known = self.memo.get((text, dtypes)) or self.memo.get((text, self.dtypes))
            if known is None:
                if judged[0] >= SHRINK_CANDIDATES or time.monotonic() > deadline:
                    return False
                judged[0] += 1
                [known] = self.judged_all([example], dtypes)
            return fp in known.outcome.fingerprints

        def guided_has_it(example: Example) -> bool:  # the guided search made again: the same targets
            known = self.memo.get((to_toml(example.raw), self.dtypes))
            if known is not None:
                guide(known)
            return has_it(example)

        database = DirectoryBasedExampleDatabase(str(self.out / DATABASE))
        key = f"nn-parity-fuzz:{fp.text()}".encode()
        attempts = []
        if any(True for _ in database.fetch(key)):  # an earlier campaign's minimal examples, tried first
            attempts.append((has_it, search_settings(phases=[Phase.reuse, Phase.shrink], database=database), 0))
        if phase == REPLAYED:  # an earlier finding: its file is already minimal, or the database has it
            pass
        elif phase == SEEDED:
            attempts.append((has_it, search_settings(phases=[Phase.generate, Phase.shrink], database=database),
                             derived_seed(self.seed, index)))
        else:
            attempts.append((guided_has_it, self._guided_settings(
                phases=[Phase.generate, Phase.target, Phase.shrink], database=database), self._guided_seed()))
        record.shrunk = None
        for condition, chosen, seed in attempts:
            try:
                record.shrunk = find(self.space, condition, settings=chosen, random=Random(seed), database_key=key)
                break
            except HypothesisException:  # nothing saved / not reached again (or flaky): the next, or the exemplar
                continue
        record.shrink_seconds = time.perf_counter() - start
        if reporter is not None:
            reporter.note(f"shrunk {fp.text()} in {record.shrink_seconds:.0f} s"
                          + ("" if record.shrunk else " (not reached again: the first example is kept)"))

    @property
    def examples_per_hour(self) -> float:
        return 3600.0 * self.examples / self.seconds if self.seconds > 0 else 0.0


def guide(judged: Judged) -> None:
    """``hypothesis.target()`` on what makes an example closer to a finding (``Judged``)."""
    target(judged.worst, label=WORST_LABEL)
    if judged.diverged_at is not None:
        target(float(judged.diverged_at), label=DIVERGENCE_LABEL)
