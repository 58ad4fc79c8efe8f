"""What a campaign says while it runs, on stderr only: a tqdm progress bar when stderr is a
terminal (examples done, examples/s, findings so far), one line per example otherwise (a log),
nothing with ``--quiet``."""
from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from tqdm import tqdm  # type: ignore[import-untyped]  # no stubs; pinned in constraints.txt

if TYPE_CHECKING:
    from harness.fuzz.campaign import Campaign


class Silent:
    def example(self, campaign: Campaign, what: str) -> None:
        pass

    def note(self, line: str) -> None:
        pass

    def __enter__(self) -> Silent:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        pass


class Lines(Silent):
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def example(self, campaign: Campaign, what: str) -> None:
        of = f"/{campaign.max_examples}" if campaign.max_examples is not None else ""
        self.note(f"example {campaign.examples}{of}: {what}")

    def note(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


class Bar(Silent):
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.bar: Any = None

    def example(self, campaign: Campaign, what: str) -> None:
        if self.bar is None:
            self.bar = tqdm(total=campaign.max_examples, file=self.stream, unit=" examples", dynamic_ncols=True,
                            desc="fuzz")
        self.bar.set_postfix_str(f"{len(campaign.records)} findings", refresh=False)
        self.bar.update(1)

    def note(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.close()


def reporter_for(*, quiet: bool, stream: TextIO) -> Silent:
    if quiet:
        return Silent()
    return Bar(stream) if stream.isatty() else Lines(stream)
