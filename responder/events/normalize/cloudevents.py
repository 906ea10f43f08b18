"""CloudEvents 1.0 (structured JSON: one event, a batch array, or one per line; on Kafka also
binary mode, `ce_*` headers with the data as the value) → whatever the data converts to.

The data is a SecurityEvent v1 or a report of any other accepted format. Which one: the format
whose name appears in `dataschema` or `type` (e.g. `type: dev.responder.securityevent.v1`,
`dataschema: .../trivy/...`, compared without punctuation), else the data's own first bytes
(`--format auto`). The envelope adds what the data may lack: its `time` is the caller's time
for findings without one, its `subject` the asset id when the caller gave none, and
`attributes.cloudevent` records its `id`, `source` and `type`. Severities are the inner format's.
The envelope is validated by the `cloudevents` SDK (`cloudevents.core`).
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import IO, Any

import orjson
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat

from responder.events.normalize.core import (
    Context,
    Draft,
    Invalid,
    Item,
    Rejected,
    parse_time,
)
from responder.events.normalize.reading import first_char, look, walk

_SPEC = re.compile(rb'"specversion"\s*:\s*"')


def detect(head: bytes) -> bool:
    """A JSON object (or list of them) whose first kilobytes name a CloudEvents spec version:
    not a word anywhere in a report that merely mentions it."""
    return first_char(head) in (b"{", b"[") and _SPEC.search(head[:4096]) is not None


Reader = Callable[[IO[bytes], Context], Iterator[Item]]


@dataclass(frozen=True)
class Dispatch:
    """How an envelope finds the reader of its data: the registry's table, handed in by the
    registry (which imports this module), so neither imports the other."""

    readers: Mapping[str, Reader]  # by format name, envelopes excluded
    detect: Callable[[bytes], str | None]  # the name of the format of a report's first bytes


def read(stream: IO[bytes], context: Context, dispatch: Dispatch) -> Iterator[Item]:
    path = "item" if first_char(look(stream)) == b"[" else ""
    for index, (_, value) in enumerate(walk(stream, (path,), multiple=path == "")):
        where = f"cloudevent {index + 1}"
        try:
            envelope = _structured(value)
        except Invalid as exc:
            yield Rejected(str(exc), where=where)
            continue
        yield from _inner(envelope, context, where, dispatch)


def read_binary(
    headers: Mapping[str, bytes], value: bytes, context: Context, dispatch: Dispatch
) -> Iterator[Any]:
    """A binary-mode Kafka CloudEvent, finished (events as dicts, with rejections)."""
    from responder.events.normalize.core import finish

    try:
        event = from_binary(KafkaMessage(headers=dict(headers), key=None, value=b""), JSONFormat())
    except (BaseCloudEventException, ValueError, UnicodeDecodeError) as exc:
        yield Rejected("not a valid CloudEvent", (_short(exc),))
        return
    attributes = {k: v for k, v in event.get_attributes().items() if isinstance(k, str)}
    envelope = {**attributes, "_data": value}
    for item in _inner(envelope, context, "cloudevent", dispatch):
        if isinstance(item, Draft):
            yield finish(item, context, "cloudevents")
        else:
            yield item


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__


def _structured(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid("a CloudEvent must be a JSON object")
    envelope = {k: v for k, v in value.items() if k not in ("data", "data_base64")}
    try:
        event = JSONFormat().read(None, orjson.dumps(envelope))
    except (BaseCloudEventException, ValueError, TypeError) as exc:
        raise Invalid(f"not a valid CloudEvent: {_short(exc)}") from None
    attributes = dict(event.get_attributes())
    if "data_base64" in value:
        encoded = value["data_base64"]
        try:
            attributes["_data"] = base64.b64decode(str(encoded), validate=True)
        except (binascii.Error, ValueError):
            raise Invalid("data_base64: not base64") from None
    elif "data" in value:
        data = value["data"]
        attributes["_data"] = data.encode() if isinstance(data, str) else orjson.dumps(data)
    return attributes


def _squash(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", value.lower())


def _named_format(envelope: Mapping[str, Any], names: Iterable[str]) -> str | None:
    hint = _squash(f"{envelope.get('dataschema') or ''} {envelope.get('type') or ''}")
    for name in sorted(names, key=len, reverse=True):
        if _squash(name) in hint:
            return name
    return None


def _inner(
    envelope: dict[str, Any], context: Context, where: str, dispatch: Dispatch
) -> Iterator[Item]:
    data = envelope.get("_data")
    if not isinstance(data, bytes) or not data.strip():
        yield Rejected("CloudEvent without data", where=where)
        return
    name = _named_format(envelope, dispatch.readers) or dispatch.detect(data[:65536])
    reader = None if name is None else dispatch.readers.get(name)
    if reader is None:
        yield Rejected("CloudEvent data is in no known format", where=where)
        return
    when = envelope.get("time")
    fallback = when if isinstance(when, datetime) and when.tzinfo else parse_time(when)
    subject = envelope.get("subject")
    inner = replace(
        context,
        time=context.time or fallback,
        asset=context.asset or (subject if isinstance(subject, str) and subject else None),
    )
    origin = {k: str(envelope[k]) for k in ("id", "source", "type") if envelope.get(k)}
    try:
        for item in reader(io.BytesIO(data), inner):
            if isinstance(item, Draft):
                item.source = item.source or name
                item.attributes = {**item.attributes, "cloudevent": origin}
                if fallback is not None and item.time is None:
                    item.time = fallback
            elif isinstance(item, Rejected):
                item = Rejected(item.reason, item.detail, f"{where}: {item.where}".rstrip(": "))
            yield item
    except Invalid as exc:
        yield Rejected(f"unreadable {name} data", (str(exc),), where=where)
