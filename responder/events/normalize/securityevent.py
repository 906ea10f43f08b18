"""SecurityEvent v1 itself, one per line (or a single event): passed through, validated, with
the caller's labels and asset added. What a CloudEvent whose data is a SecurityEvent carries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import orjson

from responder.events.normalize.core import Context, Draft, Invalid, Item, Rejected
from responder.events.normalize.reading import lines
from responder.events.schema import Rejection, SecurityEvent, parse_event


def detect(head: bytes) -> bool:
    return b'"schema_version"' in head or (
        b'"severity"' in head
        and b'"resource"' in head
        and b'"source"' in head
        and b'"type"' in head
    )


def from_event(event: SecurityEvent) -> Draft:
    data: dict[str, Any] = event.model_dump(mode="python", exclude_none=True)
    return Draft(
        key=(event.id,),
        id=event.id,
        source=event.source,
        type=event.type,
        severity=event.severity,
        title=event.title,
        resource=data["resource"],
        time=event.time,
        attributes=data.get("attributes", {}),
        actor=data.get("actor"),
        labels=dict(event.labels),
    )


def from_bytes(raw: bytes, where: str) -> Item:
    parsed = parse_event(raw)
    if isinstance(parsed, Rejection):
        return Rejected(parsed.reason, tuple(parsed.detail), where=where)
    return from_event(parsed)


def from_value(value: Any, where: str) -> Item:
    try:
        raw = orjson.dumps(value)
    except TypeError as exc:
        raise Invalid(f"not JSON: {exc}") from None
    return from_bytes(raw, where)


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    for number, line in lines(stream):
        yield from_bytes(line, f"line {number}")
