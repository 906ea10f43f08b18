"""An extra sink on standby (`streams/standby.py`): outside the sinks' group while the lead
sink keeps up, in it once the incidents not yet stored reach its threshold, out again once
they stayed low; nothing is lost or stored twice on the way."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition
from sqlalchemy import Engine
from structlog.testing import capture_logs

from responder.streams.sink import SinkStage
from responder.streams.standby import JOIN_BACKLOG, committed_offsets, group_backlog
from responder.streams.topics import ensure_topics
from tests.integration.test_sink_gather import bursts, stored
from tests.support.harness import kafka_settings
from tests.support.runner_kit import change
from tests.support.stages import running, settle

pytestmark = [pytest.mark.integration]


def changes(first: int, count: int) -> list[bytes]:
    return [
        change(incident_id=f"inc-{i}").model_dump_json().encode()
        for i in range(first, first + count)
    ]


async def test_an_extra_sink_joins_on_a_backlog_and_leaves_once_it_is_gone(
    kafka_bootstrap: str, unique: str, db: Engine
) -> None:
    kafka = kafka_settings(kafka_bootstrap, unique)
    await ensure_topics(kafka)
    extra = SinkStage(kafka, db, standby_backlog=40)
    standby = extra.standby
    assert standby is not None
    standby.leave_after_s = 1.0
    with capture_logs() as logs:
        async with running(extra):
            async with running(SinkStage(kafka, db)) as lead:
                await bursts(kafka_bootstrap, kafka.topics.incidents, changes(0, 30), 30, 0)
                await settle(lambda: lead.stats.applied == 30)
                await asyncio.sleep(2.5)  # two reads of the backlog, at most 30
                assert extra.consumer.assignment() == set() and extra.stats.changes == 0
                assert not standby.joined and not extra.subscribed
            # the lead is gone: what arrives now waits for the extra sink
            await bursts(kafka_bootstrap, kafka.topics.incidents, changes(30, 100), 100, 0)
            await settle(lambda: extra.stats.applied == 100)
            assert extra.stats.changes == 100  # each once
            await settle(lambda: not extra.subscribed, tries=100)  # ~2 reads at 0
            assert extra.consumer.assignment() == set()
            backlog = await group_backlog(extra.consumer, kafka.topics.incidents, 4)
            assert backlog.records == 0 and backlog.committed == 130
            tps = [TopicPartition(kafka.topics.incidents, p) for p in range(4)]
            one_request = await committed_offsets(extra.consumer, tps)
            assert one_request == {tp: await extra.consumer.committed(tp) for tp in tps}
    assert stored(db) == 130
    events = [e for e in logs if e["event"].endswith("the group")]
    assert [e["event"] for e in events] == [
        "backlog: joined the group",
        "backlog gone: left the group",
    ]
    assert events[0]["backlog"] >= 40 and events[1]["backlog"] < 10


async def test_a_trickle_the_group_does_not_store_is_taken_once_it_has_waited(
    kafka_bootstrap: str, unique: str, db: Engine
) -> None:
    """The lead sink down (restarting, say): a few changes, far under the threshold, wait no
    longer than the stall time for the sink on standby."""
    kafka = kafka_settings(kafka_bootstrap, unique)
    await ensure_topics(kafka)
    sink = SinkStage(kafka, db, standby_backlog=JOIN_BACKLOG)
    assert sink.standby is not None
    sink.standby.stall_s = 5.0  # well past the check below, even with a backlog read late
    async with running(sink):
        await bursts(kafka_bootstrap, kafka.topics.incidents, changes(0, 5), 5, 0)
        await asyncio.sleep(1.0)
        assert not sink.subscribed and sink.stats.changes == 0  # waiting: not stalled yet
        await settle(lambda: sink.stats.applied == 5)
    assert sink.stats.changes == 5 and stored(db) == 5


async def test_a_sink_on_standby_alone_stores_a_stream_that_backs_up(
    kafka_bootstrap: str, unique: str, db: Engine
) -> None:
    """With no member in the group (the lead sink down), the backlog of a slow trickle reaches
    the threshold and the sink on standby stores everything, once."""
    kafka = kafka_settings(kafka_bootstrap, unique)
    await ensure_topics(kafka)
    async with running(SinkStage(kafka, db, standby_backlog=25)) as sink:
        await bursts(kafka_bootstrap, kafka.topics.incidents, changes(0, 30), 5, 0.05)
        await settle(lambda: sink.stats.applied == 30)
    assert sink.stats.changes == 30 and stored(db) == 30
