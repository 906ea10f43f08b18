"""Kafka's own Java producer for tests (`tests/support/java/ProduceRecords.java`), on the jars
`scripts/kafka` runs the broker with, and a way to write what only non-Java clients write."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests" / "support" / "java" / "ProduceRecords.java"
CODECS = ("gzip", "snappy", "lz4", "zstd")


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] = field(default_factory=tuple)


# a record to send, or "codec NAME" / "topic NAME" / "begin" / "commit" / "abort" / "flush"
Step = Record | str


@cache
def classpath() -> str:
    out = subprocess.run(
        [str(ROOT / "scripts" / "kafka"), "classpath"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def _b64(data: bytes | None) -> str:
    return "-" if data is None else base64.b64encode(data).decode()


def script(steps: Sequence[Step]) -> str:
    lines = []
    for step in steps:
        if isinstance(step, str):
            lines.append(step)
            continue
        headers = [f"{_b64(k.encode())}:{_b64(v)}" for k, v in step.headers]
        lines.append(" ".join(["send", _b64(step.key), _b64(step.value), *headers]))
    return "\n".join(lines) + "\n"


def java_produce(
    bootstrap: str,
    topic: str,
    steps: Sequence[Step],
    transactional_id: str | None = None,
) -> int:
    """Produce with the Java client; the number of records the broker acknowledged."""
    args = ["java", "-cp", classpath(), str(SOURCE), bootstrap, topic]
    if transactional_id:
        args.append(transactional_id)
    done = subprocess.run(
        args, input=script(steps), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return int(done.stdout.strip().splitlines()[-1].removeprefix("sent "))


class RawKey(str):
    """A header key whose bytes are not UTF-8. aiokafka (like the Java client) takes header keys
    as text; librdkafka-based clients take any bytes. Only aiokafka's pure-Python batch builder
    encodes keys by calling `encode`, so this is how a test writes such a key."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawKey:
        made = super().__new__(cls, raw.decode("latin-1"))
        made.raw = raw
        return made

    def encode(self, *args: Any, **kwargs: Any) -> bytes:
        return self.raw


async def produce_raw_headers(
    bootstrap: str, topic: str, partition: int, records: Sequence[Record]
) -> None:
    """One uncompressed batch written by aiokafka's pure-Python builder (see `RawKey`)."""
    from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        batch = producer.create_batch()
        batch._builder = _DefaultRecordBatchBuilderPy(
            2,
            0,
            is_transactional=0,
            producer_id=-1,
            producer_epoch=-1,
            base_sequence=0,
            batch_size=1024 * 1024,
        )
        for record in records:
            assert batch.append(
                key=record.key, value=record.value, timestamp=None, headers=list(record.headers)
            )
        await (await producer.send_batch(batch, topic, partition=partition))
    finally:
        await producer.stop()
