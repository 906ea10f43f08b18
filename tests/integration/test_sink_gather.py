"""The sink stores a busy stream in few transactions: the broker holds its fetch until a MiB of
incident changes is there or a quarter second has passed (`streams/sink.py` GATHER_*), so
PostgreSQL commits a few times a second, not once per burst of changes."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from responder.incidents.store import Incident
from responder.streams import sink as sink_module
from responder.streams.sink import SinkStage
from responder.streams.topics import ensure_topics
from tests.support.harness import kafka_settings
from tests.support.runner_kit import change
from tests.support.stages import running, settle

pytestmark = [pytest.mark.integration]


async def bursts(bootstrap: str, name: str, values: list[bytes], size: int, gap_s: float) -> None:
    """`values` in bursts of `size`, each acknowledged before the next, `gap_s` apart."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    try:
        for start in range(0, len(values), size):
            sent = [await producer.send(name, v) for v in values[start : start + size]]
            await asyncio.gather(*sent)
            await asyncio.sleep(gap_s)
    finally:
        await producer.stop()


def stored(db: Engine) -> int:
    with Session(db) as session:
        return int(session.exec(select(func.count()).select_from(Incident)).one())


async def test_a_busy_stream_is_stored_in_few_transactions(
    kafka_bootstrap: str, unique: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka = kafka_settings(kafka_bootstrap, unique)
    await ensure_topics(kafka)
    values = [change(incident_id=f"inc-{i}").model_dump_json().encode() for i in range(600)]
    # the broker holds a fetch 2 s (GATHER_MS, longer here: the bursts on a loaded machine
    # take up to a second where they take ~0.15 s on an idle one)
    monkeypatch.setattr(sink_module, "GATHER_MS", 2000)
    sink = SinkStage(kafka, db)
    async with running(sink):
        # six bursts of 100 changes (each too many to wait after, for a fetch answered at
        # once), well under a MiB: one or two of the broker's holds take them
        started = time.monotonic()
        await bursts(kafka_bootstrap, kafka.topics.incidents, values, 100, 0.03)
        took = time.monotonic() - started
        await settle(lambda: sink.stats.changes == len(values))
    assert sink.stats.applied == len(values) and stored(db) == len(values)
    if took > 3:
        pytest.skip(f"the sends took {took:.1f} s: longer than a hold, nothing to tell")
    assert sink.stats.batches <= 3, (sink.stats.batches, took)  # read at once: six or more
