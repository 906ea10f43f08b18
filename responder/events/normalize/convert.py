"""One report in, SecurityEvent v1 dicts and rejections out (the CLI's and the worker's entry)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from responder.events.normalize.core import Context, Invalid, Rejected, Skipped, finish
from responder.events.normalize.reading import peek
from responder.events.normalize.registry import FORMATS, NAMES, Format, detect

Output = dict[str, Any] | Rejected | Skipped


def choose(stream: IO[bytes], name: str = "auto") -> tuple[Format, IO[bytes]] | Rejected:
    """The report's format (named, or detected from its first bytes) and the stream to read."""
    head, stream = peek(stream)
    if name == "auto":
        found = detect(head)
        if found is None:
            return Rejected(
                "unknown report format",
                (f"no known format matches the report; name one of: {', '.join(NAMES)}",),
            )
        return found, stream
    fmt = FORMATS.get(name.strip().lower())
    if fmt is None:
        return Rejected(f"unknown format {name!r}", (f"choose one of: auto, {', '.join(NAMES)}",))
    return fmt, stream


def run(fmt: Format, stream: IO[bytes], context: Context) -> Iterator[Output]:
    """Every event and rejection of one report; a report that breaks off midway (malformed
    JSON, a line too long) ends with a rejection saying where, after the events before it."""
    try:
        for item in fmt.read(stream, context):
            if isinstance(item, Rejected | Skipped):
                yield item
            else:
                yield finish(item, context, fmt.name)
    except Invalid as exc:
        yield Rejected(f"unreadable {fmt.name} report", (str(exc),))


def convert(
    stream: IO[bytes], name: str = "auto", context: Context | None = None
) -> Iterator[Output]:
    chosen = choose(stream, name)
    if isinstance(chosen, Rejected):
        yield chosen
        return
    yield from run(chosen[0], chosen[1], context or Context())


@dataclass
class Summary:
    """Counts per event type and the rejections, for the summary line and the tests."""

    events: Counter[str] = field(default_factory=Counter)
    rejected: list[Rejected] = field(default_factory=list)  # the first KEEP_REJECTED
    rejections: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    KEEP_REJECTED = 1000

    def add(self, output: Output) -> None:
        if isinstance(output, Rejected):
            self.rejections += 1
            if len(self.rejected) < self.KEEP_REJECTED:
                self.rejected.append(output)
        elif isinstance(output, Skipped):
            self.skipped[output.reason] += 1
        else:
            self.events[output["type"]] += 1

    @property
    def total(self) -> int:
        return sum(self.events.values())
