"""Events posted to the API: validated exactly as the worker's ingest does (`parse_event_doc`),
the valid ones published to the events topic, the others to the DLQ with the worker's headers,
all acknowledged by the broker before the caller is answered."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import orjson
from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel

from responder.events.fast import parse_event_doc
from responder.events.schema import Rejection
from responder.service.errors import Invalid
from responder.service.publish import Publisher, Record
from responder.settings import Topics
from responder.streams.kafka import consumer_record, dlq_headers

SOURCE = "api:/v1/events"  # the DLQ's responder.source.topic for events posted to the API


class TooMany(Invalid):
    """A batch with more events than allowed."""


class ItemOutcome(BaseModel):
    index: int
    status: Literal["accepted", "rejected"]
    source: str | None = None
    id: str | None = None
    reason: str | None = None
    detail: list[str] | None = None


class IngestResult(BaseModel):
    accepted: int
    rejected: int
    items: list[ItemOutcome]


def split(body: bytes, *, max_items: int) -> list[bytes]:
    """A JSON array is a batch (each element re-encoded compactly); anything else is one event,
    kept byte for byte (and rejected like the worker rejects it if it is not an event)."""
    if not body.strip():
        raise Invalid("the body is empty: send one event (a JSON object) or an array of them")
    if not body.lstrip().startswith(b"["):
        return [body]
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"the batch is not valid JSON: {exc}") from None
    if not isinstance(items, list):  # pragma: no cover  (starts with "[")
        raise Invalid("a batch is a JSON array")
    if len(items) > max_items:
        raise TooMany(f"a batch holds at most {max_items} events, not {len(items)}")
    return [orjson.dumps(item) for item in items]


def _origin(raw: bytes, index: int) -> ConsumerRecord[bytes, bytes]:
    """Where an API event came from, in the shape the DLQ headers describe a source."""
    return consumer_record(SOURCE, raw, index, partition=-1)


async def ingest(
    publisher: Publisher,
    topics: Topics,
    items: Sequence[bytes],
    *,
    by: str,
    request_id: str,
) -> IngestResult:
    """Validate each item, publish it (events or DLQ topic) and wait for every ack."""
    provenance = [
        ("responder.source.actor", by.encode()),
        ("responder.source.request_id", request_id.encode()),
    ]
    records: list[Record] = []
    outcomes: list[ItemOutcome] = []
    for index, raw in enumerate(items):
        parsed = parse_event_doc(raw)
        if isinstance(parsed, Rejection):
            headers = [*dlq_headers(_origin(raw, index), parsed.reason, parsed.detail), *provenance]
            records.append(Record(topics.dlq, raw, None, headers))
            outcomes.append(
                ItemOutcome(
                    index=index, status="rejected", reason=parsed.reason, detail=parsed.detail
                )
            )
            continue
        doc = parsed[0]
        key = str(doc["resource"]["id"]).encode()
        records.append(Record(topics.events, raw, key, provenance))
        outcomes.append(
            ItemOutcome(index=index, status="accepted", source=doc["source"], id=doc["id"])
        )
    await publisher.send_all(records)
    accepted = sum(1 for o in outcomes if o.status == "accepted")
    return IngestResult(accepted=accepted, rejected=len(outcomes) - accepted, items=outcomes)
