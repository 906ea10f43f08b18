"""The correlation topic's message format: one message carries many (rule, group) records.

Ingest routes each event to zero or more (rule, group key) records bound for the partition that
owns the key. A message is a small JSON header followed by the events' bytes, each event once
per message whatever number of records refer to it, so the correlation stage reads what it
correlates on from the header and never parses an event body: the bytes travel on into incident
changes and the changelog as they are.

    b"RSP3" | u32 header length | header JSON | event bytes, back to back

    header = {"docs": [[offset, length, source, id, type, severity rank, time], ...],
              "recs": [[key, doc index(, value_count value)], ...],
              "wm": [[input partition, newest event time or null], ...]}

A record is its group key (`rule|[group values]`, as `correlation.engine.route` spells it: the
correlation stage rebuilds the rule and the group from it, `engine.routed_by_key`) and the index
of its event in `docs`; it carries a third element only when its rule counts distinct values
and the event has the field. `wm` (optional) is the progress of the input partitions the ingest
batch read or holds (`correlation/watermark.py`), carried by the last message of a batch for a
partition, or alone (no docs, no records) to a partition the batch had no records for. Messages
are cut at about `CHUNK_BYTES` (event bytes plus the keys), between events; each is
self-contained. A message over `MAX_CORRELATION_MESSAGE` raises `MessageTooLarge` (ingest then
isolates the event that caused it).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
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
MAGIC = b"RSP3"
_LENGTH = struct.Struct(">I")
_RECORD_BYTES = 8  # a record's brackets, index and commas in the header, besides its key


@dataclass(slots=True)
class Chunk:
    """One message being built: its events' heads and bytes, and the records pointing at them."""

    heads: list[list[Any]] = field(default_factory=list)
    blobs: list[bytes] = field(default_factory=list)
    recs: list[list[Any]] = field(default_factory=list)
    offset: int = 0  # where the next event's bytes start
    size: int = 0  # event bytes plus the header's keys, roughly
    last: int = -1  # the batch index of the event added last

    def message(self, progress: Progress | None = None) -> bytes:
        return _message(self.heads, self.blobs, self.recs, progress)


class Router:
    """Routes one ingest batch of validated events into per-partition messages (pure).

    The per-event work of the worker's hottest loop lives here, with what it needs looked up
    once: each rule's value_count field, and the partition of each correlation key seen. Records
    go straight into the header form of the message they belong to (`Chunk`), so nothing is
    built per record that the message does not carry.
    """

    CACHE_KEYS = 200_000

    def __init__(self, rules: RuleSet, partitions: int) -> None:
        self.lineage: LineageIndex | None = None  # set per batch by IngestBatch
        self.rules = rules
        self.partitions = partitions
        self.events = 0  # events added this batch (the index of the next one)
        self.chunks: dict[int, list[Chunk]] = {}  # partition → its messages, the last one open
        self.records = 0
        self.progress: dict[int, float | None] = {}  # input partition → newest event time
        self._fields = {r.id: r.value_field for r in rules.rules.values()}
        self._partition_of: dict[str, int] = {}

    def reset(self) -> None:
        self.events, self.chunks, self.records, self.progress = 0, {}, 0, {}
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
        index = self.events
        self.events += 1
        if not routes:
            return 0
        chunks, partition_of, fields = self.chunks, self._partition_of, self._fields
        size = len(body)
        head: list[Any] | None = None
        for rule_id, key, _ in routes:
            partition = partition_of.get(key)
            if partition is None:
                partition = partition_of[key] = partition_for(key, self.partitions)
            cut = chunks.get(partition)
            if cut is None:
                cut = chunks[partition] = [Chunk()]
            chunk = cut[-1]
            if chunk.last != index:  # the event's first record in this message
                if chunk.size > CHUNK_BYTES:
                    chunk = Chunk()
                    cut.append(chunk)
                if head is None:
                    head = [doc["source"], doc["id"], doc["type"], RANK[doc["severity"]], time]
                chunk.heads.append([chunk.offset, size, *head])
                chunk.blobs.append(body)
                chunk.offset += size
                chunk.size += size
                chunk.last = index
            field = fields[rule_id]
            local = len(chunk.heads) - 1
            if field is None:
                chunk.recs.append([key, local])
            else:
                value = get_path(doc, field)
                chunk.recs.append([key, local] if value is MISSING else [key, local, value])
            chunk.size += len(key) + _RECORD_BYTES
        self.records += len(routes)
        return len(routes)

    def hold(self, input_partitions: Iterable[int]) -> None:
        """Input partitions this ingest reads, even those it read no event from this batch."""
        for partition in input_partitions:
            self.progress.setdefault(partition, None)

    def messages(self, announce: bool = False) -> dict[int, list[bytes]]:
        """Messages per correlation partition, the last of each carrying the input progress;
        with `announce`, the progress goes to every partition, a message of its own to those
        the batch had no records for."""
        progress = [[p, t] for p, t in sorted(self.progress.items())] or None
        out = {
            p: [c.message(progress if c is cut[-1] else None) for c in cut]
            for p, cut in self.chunks.items()
        }
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


DecodedRecord = tuple[str, WindowEvent]
"""(group key, event): the rule and the group are the key's (`engine.routed_by_key`)."""


def decode(value: bytes) -> list[DecodedRecord]:
    """(group key, event) for every record of one message; bodies stay bytes."""
    return read(value)[0]


def read(value: bytes) -> tuple[list[DecodedRecord], list[tuple[int, float | None]]]:
    """The records of one message and the input progress it carries. Checked here: the
    framing, the header's shape, each record's event index and a bad `wm` raise like any
    undecodable message. Not checked: the values inside an event's head and a record's key,
    which only the engine reads (a wrong type fails that record alone, `streams/correlate.py`)."""
    if value[:4] != MAGIC:
        raise ValueError("not a correlation message (bad magic)")
    (size,) = _LENGTH.unpack_from(value, 4)
    header = orjson.loads(value[8 : 8 + size])
    progress = []
    for partition, newest in header.get("wm") or ():
        if type(partition) is not int or not (newest is None or type(newest) in (int, float)):
            raise ValueError("bad input progress in a correlation message")
        progress.append((partition, newest))
    base = 8 + size
    docs = header["docs"]
    for head in docs:  # each event's bytes cut from the message once, in place of its bounds
        offset, length = head[0], head[1]
        start = base + offset
        if (
            len(head) != 7
            or type(offset) is not int
            or type(length) is not int
            or offset < 0
            or length < 0
            or start + length > len(value)
        ):
            raise ValueError("bad event in a correlation message")
        head[0] = value[start : start + length]
    out: list[DecodedRecord] = []
    for rec in header["recs"]:
        index = rec[1]
        if type(index) is not int or index < 0:
            raise ValueError("bad event index in a correlation message")
        raw, _, source, event_id, event_type, severity, time = docs[index]
        counted = rec[2] if len(rec) > 2 else MISSING
        event = WindowEvent(time, -1, source, event_id, event_type, severity, counted, None, raw)
        out.append((rec[0], event))
    return out, progress
