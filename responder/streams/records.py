"""The correlation topic's message format: one message carries many (rule, group) records.

Ingest routes each event to zero or more (rule, group key) records bound for the partition that
owns the key. A message is a small JSON header followed by the events' bytes, so the
correlation stage reads what it correlates on from the header and never parses an event body:
the bytes travel on into incident changes and the changelog as they are.

    b"RSP2" | u32 header length | header JSON | event bytes, back to back

    header = {"docs": [[offset, length, source, id, type, severity rank], ...],
              "recs": [[rule_id, key, group, time, doc index(, value_count value)], ...],
              "wm": [[input partition, newest event time or null], ...]}

A record carries a sixth element only when its rule counts distinct values and the event has
the field. `wm` (optional) is the progress of the input partitions the ingest batch read or
holds (`correlation/watermark.py`), carried by the last message of a batch for a partition, or
alone (no docs, no records) to a partition the batch had no records for. Messages are cut at about `CHUNK_BYTES` (event bytes plus an estimate of the header);
each is self-contained. A message over `MAX_CORRELATION_MESSAGE` raises `MessageTooLarge`
(ingest then isolates the event that caused it).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from responder.assets.lineage import LineageIndex
from responder.correlation.engine import route
from responder.correlation.match import MISSING, get_path
from responder.correlation.rules import LINEAGE, RuleSet
from responder.correlation.window import WindowEvent
from responder.events.schema import Severity
from responder.streams.topics import MAX_MESSAGE_BYTES, partition_for

RANK = {s.name: int(s) for s in Severity}

Progress = list[list[Any]]
"""[[input partition, newest event time read there or None], ...]"""

CHUNK_BYTES = 512 * 1024
MAX_CORRELATION_MESSAGE = MAX_MESSAGE_BYTES - 64 * 1024  # room for the record batch framing
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

    def messages(self, progress: Progress | None = None) -> Iterator[bytes]:
        """The batch's records cut into messages; the last one carries `progress`."""
        local: dict[int, int] = {}
        heads: list[list[Any]] = []
        blobs: list[bytes] = []
        recs: list[list[Any]] = []
        offset = 0  # where the next event's bytes start
        size = 0  # event bytes plus the header's keys and groups, roughly
        for rec in self.records:
            if recs and size > CHUNK_BYTES:
                yield _message(heads, blobs, recs, None)
                local, heads, blobs, recs, offset, size = {}, [], [], [], 0, 0
            index = local.get(rec.doc)
            if index is None:
                doc = self.docs[rec.doc]
                index = local[rec.doc] = len(heads)
                heads.append([offset, len(doc.raw), doc.source, doc.id, doc.type, doc.severity])
                blobs.append(doc.raw)
                offset += len(doc.raw)
                size += len(doc.raw)
            out = [rec.rule_id, rec.key, rec.group, rec.time, index]
            if rec.value is not MISSING:
                out.append(rec.value)
            recs.append(out)
            size += 2 * len(rec.key)  # the key and the group it spells out, in the header
        if recs or progress:
            yield _message(heads, blobs, recs, progress)


class Router:
    """Routes one ingest batch of validated events into per-partition record batches (pure).

    The per-event work of the worker's hottest loop lives here, with what it needs looked up
    once: each rule's value_count field, and the partition of each correlation key seen.
    """

    CACHE_KEYS = 200_000

    def __init__(self, rules: RuleSet, partitions: int) -> None:
        self.lineage: LineageIndex | None = None  # set per batch by IngestBatch
        self.rules = rules
        self.partitions = partitions
        self.docs: list[Doc] = []
        self.batches: dict[int, PartitionBatch] = {}
        self.records = 0
        self.progress: dict[int, float | None] = {}  # input partition → newest event time
        self._fields = {r.id: r.value_field for r in rules.rules.values()}
        self._partition_of: dict[str, int] = {}

    def reset(self) -> None:
        self.docs, self.batches, self.records, self.progress = [], {}, 0, {}
        if len(self._partition_of) > self.CACHE_KEYS:
            self._partition_of.clear()

    def add(
        self, doc: dict[str, Any], time: float, body: bytes, input_partition: int | None = None
    ) -> int:
        """Route one validated event (its dict form, epoch time and serialized body, read from
        `input_partition`); return how many records it became (0: no rule matched). With a
        lineage index, the event's lineage is routed on under `lineage` (its bytes stay as they
        came) where a rule that could match its type reads it."""
        if self.lineage is not None and self.rules.needs_lineage(doc["type"]):
            found = self.lineage.of(doc["resource"])
            if found is not None:
                doc[LINEAGE] = found
        routes = route(self.rules, doc)
        if input_partition is not None:
            newest = self.progress.get(input_partition)
            if newest is None or time > newest:
                self.progress[input_partition] = time
        if not routes:
            return 0
        index = len(self.docs)
        self.docs.append(Doc(body, doc["source"], doc["id"], doc["type"], RANK[doc["severity"]]))
        batches, partition_of, fields = self.batches, self._partition_of, self._fields
        for rule_id, key, group in routes:
            partition = partition_of.get(key)
            if partition is None:
                partition = partition_of[key] = partition_for(key, self.partitions)
            target = batches.get(partition)
            if target is None:
                target = batches[partition] = PartitionBatch(self.docs)
            field = fields[rule_id]
            value = MISSING if field is None else get_path(doc, field)
            target.records.append(Record(rule_id, key, group, time, index, value))
        self.records += len(routes)
        return len(routes)

    def hold(self, input_partitions: Iterable[int]) -> None:
        """Input partitions this ingest reads, even those it read no event from this batch."""
        for partition in input_partitions:
            self.progress.setdefault(partition, None)

    def messages(self, announce: bool = False) -> dict[int, list[bytes]]:
        """Messages per correlation partition; with `announce`, the progress goes to every
        partition, a message of its own to those the batch had no records for."""
        progress = [[p, t] for p, t in sorted(self.progress.items())] or None
        out = {p: list(b.messages(progress)) for p, b in self.batches.items()}
        if announce and progress:
            for partition in range(self.partitions):
                if partition not in out:
                    out[partition] = [_message([], [], [], progress)]
        return out


class MessageTooLarge(ValueError):
    """A correlation message the topic would refuse (see MAX_CORRELATION_MESSAGE)."""


def _message(
    heads: list[list[Any]], blobs: list[bytes], recs: list[list[Any]], progress: Progress | None
) -> bytes:
    fields: dict[str, Any] = {"docs": heads, "recs": recs}
    if progress:
        fields["wm"] = progress
    header = orjson.dumps(fields)
    message = b"".join([MAGIC, _LENGTH.pack(len(header)), header, *blobs])
    if len(message) > MAX_CORRELATION_MESSAGE:
        raise MessageTooLarge(
            f"correlation message of {len(message)} bytes > {MAX_CORRELATION_MESSAGE}"
        )
    return message


DecodedRecord = tuple[str, str, dict[str, Any], WindowEvent]


def decode(value: bytes) -> Iterator[DecodedRecord]:
    """(rule_id, key, group, event) for every record of one message; bodies stay bytes."""
    return read(value)[0]


def read(value: bytes) -> tuple[Iterator[DecodedRecord], list[tuple[int, float | None]]]:
    """The records of one message and the input progress it carries (checked here: a bad
    `wm` raises like any undecodable message)."""
    if value[:4] != MAGIC:
        raise ValueError("not a correlation message (bad magic)")
    (size,) = _LENGTH.unpack_from(value, 4)
    header = orjson.loads(value[8 : 8 + size])
    progress = []
    for partition, newest in header.get("wm") or ():
        if type(partition) is not int or not (newest is None or type(newest) in (int, float)):
            raise ValueError("bad input progress in a correlation message")
        progress.append((partition, newest))
    return _records(value, header, 8 + size), progress


def _records(value: bytes, header: dict[str, Any], base: int) -> Iterator[DecodedRecord]:
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
