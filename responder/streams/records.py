"""The correlation topic's message format: one message carries many (rule, group) records.

Ingest routes each event to zero or more (rule, group key) records bound for the partition that
owns the key. A message holds the events once (`docs`) and the records point at them by index,
so an event that matches two rules is neither serialized nor parsed twice:

    {"docs": [<event>, ...], "recs": [[rule_id, key, group, time, doc_index], ...]}

Messages are cut at about `CHUNK_BYTES`; each is self-contained (its records only point into its
own `docs`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

CHUNK_BYTES = 512 * 1024


@dataclass(slots=True)
class Record:
    rule_id: str
    key: str
    group: dict[str, Any]
    time: float
    doc: int  # index into the batch's serialized events


@dataclass
class PartitionBatch:
    """Records bound for one correlation partition, cut into messages by size."""

    docs: list[bytes]  # the whole ingest batch's events, serialized once, shared by partitions
    records: list[Record] = field(default_factory=list)

    def messages(self) -> Iterator[bytes]:
        local: dict[int, int] = {}
        chunk_docs: list[bytes] = []
        recs: list[list[Any]] = []
        size = 0
        for rec in self.records:
            if recs and size > CHUNK_BYTES:
                yield _message(chunk_docs, recs)
                local, chunk_docs, recs, size = {}, [], [], 0
            index = local.get(rec.doc)
            if index is None:
                index = local[rec.doc] = len(chunk_docs)
                raw = self.docs[rec.doc]
                chunk_docs.append(raw)
                size += len(raw)
            recs.append([rec.rule_id, rec.key, rec.group, rec.time, index])
            size += len(rec.key) + 32
        if recs:
            yield _message(chunk_docs, recs)


def _message(docs: list[bytes], recs: list[list[Any]]) -> bytes:
    return b'{"docs":[' + b",".join(docs) + b'],"recs":' + orjson.dumps(recs) + b"}"


def decode(value: bytes) -> Iterator[tuple[str, str, dict[str, Any], float, dict[str, Any]]]:
    """(rule_id, key, group, time, event) for every record of one message."""
    data = orjson.loads(value)
    docs = data["docs"]
    for rule_id, key, group, time, index in data["recs"]:
        yield rule_id, key, group, time, docs[index]
