"""Send a JSONL file to a Kafka topic with a progress bar (the `send` command)."""

from __future__ import annotations

from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from responder.settings import KafkaSettings
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
        bootstrap_servers=kafka.bootstrap_servers,
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
