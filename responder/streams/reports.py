"""Reports stage: `responder.reports` → the converters (`events/normalize`) → `responder.events`.

A message is one tool report, in one of three shapes:

- the report's bytes with its format in the header `responder.format` (`auto` detects), and
  optionally `responder.labels` (a JSON object), `responder.asset`, `responder.time`
  (what `responder send FILE --format ...` writes);
- a JSON wrapper `{"format": ..., "labels": {...}, "asset": ..., "time": ..., "report": ...}`
  whose `report` is the report itself (JSON) or its text (JSON Lines, picklescan output);
- a CloudEvent in Kafka binary mode (`ce_*` headers, the data as the value).

Without a format the report's first bytes decide. Findings without a time of their own take the
caller's time: the wrapper's or header's `time`, else the message's own timestamp (set by the
producer when it sent the report); such events say `attributes.time_source: caller`.

Events are sent keyed by resource id. Nothing is dropped silently: a report that yields no event
but rejections (unknown format, malformed JSON, findings that do not fit) goes to the DLQ
unchanged with the reason in headers; a report converted in part sends its events and one DLQ
message listing the rejected parts (where and why, not their content). The report of a secret
scanner (gitleaks, trufflehog) is never copied to the DLQ: its sha256 and size take its place.
Offsets are committed after the broker acknowledged every event and DLQ message of the batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from aiokafka import ConsumerRecord

from responder.events.normalize import FORMATS, Context, Rejected, Summary, choose, run
from responder.events.normalize import cloudevents as cloudevents_format
from responder.events.normalize.convert import Output
from responder.events.normalize.core import parse_time
from responder.events.normalize.registry import dispatch
from responder.settings import KafkaSettings
from responder.streams.failures import TOMBSTONE, failure_detail, failure_reason
from responder.streams.kafka import Batch, TopicStage, dlq_headers
from responder.streams.topics import MAX_MESSAGE_BYTES

log = structlog.get_logger(__name__)

FORMAT_HEADER = "responder.format"
LABELS_HEADER = "responder.labels"
ASSET_HEADER = "responder.asset"
TIME_HEADER = "responder.time"
WRAPPER_KEYS = {"format", "labels", "asset", "time", "report"}
MAX_LISTED = 200  # rejected parts listed in one DLQ message


def report_headers(format: str, context: Context) -> list[tuple[str, bytes]]:
    """The headers `responder send --format` puts on a report message."""
    headers = [(FORMAT_HEADER, format.encode())]
    if context.labels:
        headers.append((LABELS_HEADER, orjson.dumps(dict(context.labels))))
    if context.asset:
        headers.append((ASSET_HEADER, context.asset.encode()))
    if context.time is not None:
        headers.append((TIME_HEADER, context.time.isoformat().encode()))
    return headers


@dataclass(frozen=True)
class Request:
    """One report to convert and what the sender said about it."""

    format: str
    context: Context
    body: bytes
    binary_cloudevent: dict[str, bytes] | None = None


class BadRequest(ValueError):
    pass


def _labels(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BadRequest("labels: expected an object of strings")
    return dict(value)


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    when = parse_time(value)
    if when is None:
        raise BadRequest(f"time: {str(value)[:64]!r} is not an RFC 3339 time with offset")
    return when


def _message_time(msg: ConsumerRecord[bytes, bytes]) -> datetime | None:
    if msg.timestamp is None or msg.timestamp_type != 0:  # 0: CreateTime, set by the producer
        return None
    return datetime.fromtimestamp(msg.timestamp / 1000, tz=UTC)


def request_of(msg: ConsumerRecord[bytes, bytes]) -> Request:
    """What to convert: from headers, a JSON wrapper, or a binary-mode CloudEvent."""
    headers = {k: v or b"" for k, v in msg.headers or ()}  # a header's value may be null
    value = msg.value or b""
    fallback = _message_time(msg)
    if any(k.lower().startswith("ce_") for k in headers):
        return Request("cloudevents", Context(time=fallback), value, headers)
    try:
        if FORMAT_HEADER in headers:
            labels = orjson.loads(headers[LABELS_HEADER]) if LABELS_HEADER in headers else None
            asset = headers.get(ASSET_HEADER, b"").decode() or None
            when = _time(headers[TIME_HEADER].decode()) if TIME_HEADER in headers else None
            context = Context(labels=_labels(labels), asset=asset, time=when or fallback)
            return Request(headers[FORMAT_HEADER].decode().strip() or "auto", context, value)
    except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"unreadable report headers: {exc}") from None
    if value.lstrip()[:1] == b"{" and b'"report"' in value:
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict) and "report" in doc and set(doc) <= WRAPPER_KEYS:
            report = doc["report"]
            body = report.encode() if isinstance(report, str) else orjson.dumps(report)
            fmt = doc.get("format") or "auto"
            asset = doc.get("asset")
            if not isinstance(fmt, str) or not (asset is None or isinstance(asset, str)):
                raise BadRequest("format and asset must be strings")
            context = Context(
                labels=_labels(doc.get("labels")),
                asset=asset or None,
                time=_time(doc.get("time")) or fallback,
            )
            return Request(fmt, context, body)
    return Request("auto", Context(time=fallback), value)


def convert_request(request: Request) -> tuple[str, list[Output]]:
    """The format used and every output of one report (pure; run in a worker thread)."""
    if request.binary_cloudevent is not None:
        outputs = list(
            cloudevents_format.read_binary(
                request.binary_cloudevent, request.body, request.context, dispatch()
            )
        )
        return "cloudevents", outputs
    chosen = choose(io.BytesIO(request.body), request.format)
    if isinstance(chosen, Rejected):
        return request.format, [chosen]
    fmt, stream = chosen
    return fmt.name, list(run(fmt, stream, request.context))


@dataclass
class ReportStats:
    reports: int = 0
    events: int = 0
    rejected: int = 0
    dead: int = 0


class ReportStage(TopicStage):
    def __init__(self, kafka: KafkaSettings, *, max_batch: int = 16) -> None:
        super().__init__(kafka, kafka.topics.reports, "reports", max_records=max_batch)
        self.stats = ReportStats()

    def consumer_options(self) -> dict[str, Any]:
        return {"max_partition_fetch_bytes": MAX_MESSAGE_BYTES, "fetch_max_bytes": 16 * 1024 * 1024}

    def producer_options(self) -> dict[str, Any]:
        return {"acks": "all", "linger_ms": 5, "max_request_size": MAX_MESSAGE_BYTES + 64 * 1024}

    async def handle(self, batch: Batch) -> None:
        for messages in batch.values():
            for msg in messages:
                try:
                    await self.convert(msg)
                except Exception as exc:  # whatever it is, the next report still runs
                    log.exception("report failed", partition=msg.partition, offset=msg.offset)
                    detail = failure_detail(exc)
                    # it may be a secret scanner's: named by sha256, never copied
                    await self.dead_letter(
                        msg, failure_reason("reports", exc), detail, sensitive=True
                    )
        await self.done(batch)

    async def convert(self, msg: ConsumerRecord[bytes, bytes]) -> None:
        self.stats.reports += 1
        if msg.value is None:
            await self.dead_letter(msg, TOMBSTONE, [], sensitive=False)
            return
        try:
            request = request_of(msg)
        except BadRequest as exc:
            await self.dead_letter(msg, "unreadable report message", [str(exc)], sensitive=False)
            return
        name, outputs = await asyncio.to_thread(convert_request, request)
        summary = Summary()
        for output in outputs:
            summary.add(output)
            if isinstance(output, dict):
                self.pending.append(
                    await self.producer.send(
                        self.kafka.topics.events,
                        value=orjson.dumps(output),
                        key=str(output["resource"]["id"]).encode(),
                    )
                )
        self.stats.events += summary.total
        self.stats.rejected += summary.rejections
        sensitive = name in FORMATS and FORMATS[name].sensitive
        log.info(
            "report converted",
            format=name,
            events=summary.total,
            rejected=summary.rejections,
            skipped=sum(summary.skipped.values()),
            partition=msg.partition,
            offset=msg.offset,
        )
        if not summary.rejections:
            return
        reasons = [_describe(r) for r in summary.rejected[:MAX_LISTED]]
        if not summary.total:
            first = summary.rejected[0]
            await self.dead_letter(msg, first.reason, reasons, sensitive=sensitive)
        else:
            await self.dead_letter(
                msg,
                f"{summary.rejections} part(s) of a {name} report rejected",
                reasons,
                sensitive=True,  # the report was used: the DLQ lists what did not fit
            )

    async def dead_letter(
        self,
        msg: ConsumerRecord[bytes, bytes],
        reason: str,
        detail: Sequence[str],
        *,
        sensitive: bool,
    ) -> None:
        """The original report to the DLQ, or (`sensitive`) a note naming it by sha256."""
        self.stats.dead += 1
        log.warning("report to DLQ", reason=reason, partition=msg.partition, offset=msg.offset)
        if not sensitive:
            await self.reject(msg, reason, detail)
            return
        value = msg.value or b""
        note = {
            "report_sha256": hashlib.sha256(value).hexdigest(),
            "report_bytes": len(value),
            "reason": reason,
            "rejected": list(detail),
        }
        self.pending.append(
            await self.producer.send(
                self.kafka.topics.dlq,
                value=orjson.dumps(note),
                key=msg.key,
                headers=dlq_headers(msg, reason, detail),
            )
        )


def _describe(rejected: Rejected) -> str:
    where = f"{rejected.where}: " if rejected.where else ""
    detail = f" ({'; '.join(rejected.detail[:2])})" if rejected.detail else ""
    return f"{where}{rejected.reason}{detail}"[:500]
