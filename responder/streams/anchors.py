"""Anchoring the audit chain's head outside the database (`audit/anchors.py` says why).

`AnchorStage` runs in the worker (stage `anchors`): every `RESPONDER_AUDIT__ANCHOR_EVERY_S`
seconds it reads the chain's head and, when it moved, appends it to the anchor file
(`RESPONDER_AUDIT__ANCHOR_FILE`, fsync'd, opened append-only) and produces it to the anchor
topic (`RESPONDER_AUDIT__ANCHOR_TOPIC`, `responder.audit-anchors`, acks from all replicas,
retention unlimited). A database writer can change neither: the topic's ACLs and the file's
permissions are not the database's. `read_file` and `read_topic` give them back to
`audit verify`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from sqlalchemy import Engine
from sqlmodel import Session

from responder.audit.anchors import Anchor, parse
from responder.audit.store import head
from responder.kafka_clients import client_options
from responder.settings import AuditSettings, KafkaSettings

log = structlog.get_logger(__name__)

MAX_FILE_ANCHORS = 100_000  # lines read back from an anchor file (the newest are kept)


def append_to_file(path: Path, anchor: Anchor) -> None:
    """Append one anchor line and fsync it (the file is created 0o600)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (anchor.to_json() + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read_file(path: Path) -> tuple[list[Anchor], int]:
    """(anchors, lines that were not anchors) of an anchor file; OSError if it cannot be read."""
    anchors: list[Anchor] = []
    skipped = 0
    with path.open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            anchor = parse(line.strip())
            if anchor is None:
                skipped += 1
            else:
                anchors.append(anchor)
                if len(anchors) > MAX_FILE_ANCHORS:
                    anchors = anchors[-MAX_FILE_ANCHORS // 2 :]
    return anchors, skipped


async def read_topic(
    kafka: KafkaSettings, topic: str, timeout_s: float = 10.0
) -> tuple[list[Anchor], int]:
    """(anchors, messages that were not anchors) on the anchor topic, from its beginning to the
    end offsets seen when reading starts (no consumer group, nothing committed)."""
    consumer = AIOKafkaConsumer(
        **client_options(kafka),
        client_id=f"{kafka.client_id}-audit-verify",
        enable_auto_commit=False,
        group_id=None,
    )
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [p["partition"] for d in described if d.get("error_code", 0) == 0
                  for p in d.get("partitions", [])]  # fmt: skip
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assigned:
            return [], 0
        # the ends first: once assigned, a fetch the broker holds delays the next request
        ends = await consumer.end_offsets(assigned)
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        anchors: list[Anchor] = []
        skipped = 0

        async def behind() -> bool:
            return any([await consumer.position(tp) < end for tp, end in ends.items()])

        async with asyncio.timeout(timeout_s):
            while await behind():
                batch = await consumer.getmany(timeout_ms=500, max_records=1000)
                for records in batch.values():
                    for record in records:
                        anchor = None if record.value is None else parse(record.value)
                        if anchor is None:
                            skipped += 1
                        else:
                            anchors.append(anchor)
        return anchors, skipped
    finally:
        await consumer.stop()


class AnchorStage:
    """Anchor the chain's head every `anchor_every_s` seconds when it moved."""

    def __init__(self, engine: Engine, audit: AuditSettings, kafka: KafkaSettings) -> None:
        self.engine = engine
        self.audit = audit
        self.kafka = kafka
        self.last: tuple[int, str] | None = None
        self.producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        topic = self.audit.anchor_topic
        if topic is None:
            return
        await self._ensure_topic(topic)
        self.producer = AIOKafkaProducer(
            **client_options(self.kafka),
            client_id=f"{self.kafka.client_id}-anchors",
            acks="all",
        )
        await self.producer.start()

    async def _ensure_topic(self, topic: str) -> None:
        admin = AIOKafkaAdminClient(**client_options(self.kafka))
        await admin.start()
        try:
            if topic not in set(await admin.list_topics()):
                spec = NewTopic(
                    topic, 1, self.kafka.replication_factor, topic_configs={"retention.ms": "-1"}
                )
                with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                    await admin.create_topics([spec])
        finally:
            await admin.close()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def run(self) -> None:
        while True:
            try:
                await self.anchor_once()
            except Exception as exc:  # never stop the worker; the next round tries again
                log.warning("audit anchor not written", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.audit.anchor_every_s)

    async def anchor_once(self) -> Anchor | None:
        """Write the head as an anchor if it moved since the last one; return it."""
        current = await asyncio.to_thread(self._head)
        if current is None or current == self.last:
            return None
        anchor = Anchor(current[0], current[1], datetime.now(UTC))
        if self.audit.anchor_file is not None:
            await asyncio.to_thread(append_to_file, self.audit.anchor_file, anchor)
        if self.producer is not None and self.audit.anchor_topic is not None:
            await self.producer.send_and_wait(
                self.audit.anchor_topic, anchor.to_json().encode("utf-8"), key=b"audit-head"
            )
        self.last = current
        log.info("audit chain anchored", seq=anchor.seq)
        return anchor

    def _head(self) -> tuple[int, str] | None:
        with Session(self.engine) as session:
            return head(session)
