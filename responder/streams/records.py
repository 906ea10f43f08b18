"""The correlation topic's message format: one message carries many (rule, group) records.

Ingest routes each event to zero or more (rule, group key) records bound for the partition that
owns the key. A message is a small JSON header followed by the events' bytes, so the
correlation stage reads what it correlates on from the header and never parses an event body:
the bytes travel on into incident changes and the changelog as they are.

    b"RSP2" | u32 header length | header JSON | event bytes, back to back

    header = {"docs": [[offset, length, source, id, type, severity rank], ...],
              "recs": [[rule_id, key, group, time, doc index(, value_count value)], ...]}

A record carries a sixth element only when its rule counts distinct values and the event has
the field. Messages are cut at about `CHUNK_BYTES`; each is self-contained.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from responder.correlation.match import MISSING
from responder.correlation.window import WindowEvent

CHUNK_BYTES = 512 * 1024
MAGIC = b"RSP2"
_LENGTH = struct.Struct(">I")


@dataclass(slots=True)
class Doc:
    """One validated event, serialized once per ingest batch."""

    raw: bytes
    source: str
    id: str
    type: str
    severity: int


@dataclass(slots=True)
class Record:
    rule_id: str
    key: str
    group: dict[str, Any]
    time: float
    doc: int  # index into the batch's events
    value: Any = MISSING  # the value_count field's value, when the rule counts one


@dataclass
class PartitionBatch:
    """Records bound for one correlation partition, cut into messages by size."""

    docs: list[Doc]  # the whole ingest batch's events, shared by every partition
    records: list[Record] = field(default_factory=list)

    def messages(self) -> Iterator[bytes]:
        local: dict[int, int] = {}
        heads: list[list[Any]] = []
        blobs: list[bytes] = []
        recs: list[list[Any]] = []
        offset = 0
        for rec in self.records:
            if recs and offset > CHUNK_BYTES:
                yield _message(heads, blobs, recs)
                local, heads, blobs, recs, offset = {}, [], [], [], 0
            index = local.get(rec.doc)
            if index is None:
                doc = self.docs[rec.doc]
                index = local[rec.doc] = len(heads)
                heads.append([offset, len(doc.raw), doc.source, doc.id, doc.type, doc.severity])
                blobs.append(doc.raw)
                offset += len(doc.raw)
            out = [rec.rule_id, rec.key, rec.group, rec.time, index]
            if rec.value is not MISSING:
                out.append(rec.value)
            recs.append(out)
        if recs:
            yield _message(heads, blobs, recs)


def _message(heads: list[list[Any]], blobs: list[bytes], recs: list[list[Any]]) -> bytes:
    header = orjson.dumps({"docs": heads, "recs": recs})
    return b"".join([MAGIC, _LENGTH.pack(len(header)), header, *blobs])


def decode(value: bytes) -> Iterator[tuple[str, str, dict[str, Any], WindowEvent]]:
    """(rule_id, key, group, event) for every record of one message; bodies stay bytes."""
    if value[:4] != MAGIC:
        raise ValueError("not a correlation message (bad magic)")
    (size,) = _LENGTH.unpack_from(value, 4)
    header = orjson.loads(value[8 : 8 + size])
    base = 8 + size
    docs = header["docs"]
    for rec in header["recs"]:
        offset, length, source, event_id, event_type, severity = docs[rec[4]]
        start = base + offset
        yield (
            rec[0],
            rec[1],
            rec[2],
            WindowEvent(
                time=rec[3],
                seq=-1,
                source=source,
                id=event_id,
                type=event_type,
                severity=severity,
                value=rec[5] if len(rec) > 5 else MISSING,
                raw=value[start : start + length],
            ),
        )
