"""Send a JSONL file to a Kafka topic with a progress bar, or one tool report to the reports
topic (the `send` command)."""

from __future__ import annotations

from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from responder.events.normalize import Context
from responder.kafka_clients import client_options
from responder.settings import KafkaSettings
from responder.streams.reports import report_headers
from responder.streams.topics import MAX_MESSAGE_BYTES, ensure_topics


def message_key(line: bytes) -> bytes | None:
    """Key by resource id so one resource's events keep their order; None if unreadable."""
    try:
        doc = orjson.loads(line)
        return str(doc["resource"]["id"]).encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


async def send_file(kafka: KafkaSettings, path: Path, topic: str) -> int:
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]  # noqa: ASYNC240
    await ensure_topics(kafka)
    producer = AIOKafkaProducer(
        **client_options(kafka),
        linger_ms=10,
        acks="all",
        max_request_size=MAX_MESSAGE_BYTES + 64 * 1024,
    )
    await producer.start()
    try:
        with Progress(
            TextColumn("sending {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
        ) as progress:
            task = progress.add_task(path.name, total=len(lines))
            futures = []
            for line in lines:
                futures.append(await producer.send(topic, value=line, key=message_key(line)))
                progress.advance(task)
            for future in futures:
                await future
    finally:
        await producer.stop()
    return len(lines)


async def send_report(
    kafka: KafkaSettings, path: Path, topic: str, format: str, context: Context
) -> int:
    """Send one tool report as one message, format, labels, asset and time in headers."""
    value = path.read_bytes()  # noqa: ASYNC240
    if len(value) > MAX_MESSAGE_BYTES:
        raise ValueError(
            f"{path}: {len(value)} bytes is over the {MAX_MESSAGE_BYTES}-byte message limit; "
            f"convert it here and send the events: responder convert {path} > events.jsonl"
        )
    await ensure_topics(kafka)
    producer = AIOKafkaProducer(
        **client_options(kafka),
        acks="all",
        max_request_size=MAX_MESSAGE_BYTES + 64 * 1024,
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            value=value,
            key=(context.asset or path.name).encode(),
            headers=report_headers(format, context),
        )
    finally:
        await producer.stop()
    return len(value)
