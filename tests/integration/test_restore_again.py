"""The restorer between restores, on the real broker: it knows the changelog's partitions from
the start, fetches nothing between restores (paused), and a partition restored a second time
(assigned again after a rebalance) is read again from the beginning, with what was written
meanwhile."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition

from responder.streams.topics import ensure_topics
from tests.support.changelog import entry, key_of, restoring
from tests.support.harness import kafka_settings
from tests.support.java_client import produce_raw_headers

pytestmark = [pytest.mark.integration]


def keys(*numbers: int) -> set[str]:
    return {key_of(n) for n in numbers}


async def test_the_restorer_fetches_nothing_between_restores_and_restores_again(
    kafka_bootstrap: str, unique: str
) -> None:
    kafka = kafka_settings(kafka_bootstrap, unique)
    await ensure_topics(kafka)
    changelog = kafka.topics.changelog
    everything = {TopicPartition(changelog, p) for p in range(kafka.partitions)}
    await produce_raw_headers(kafka_bootstrap, changelog, 0, [entry(0), entry(1)])

    async with restoring(kafka) as stage:
        await stage._prime_restorer()
        assert stage.restorer.assignment() == everything
        assert stage.restorer.paused() == everything  # known, not fetched

        assert await stage._restore([0, 1]) == 2
        assert set(stage.stores[0]) == keys(0, 1) and not stage.stores[1]
        assert stage.restorer.paused() == {
            TopicPartition(changelog, 0),
            TopicPartition(changelog, 1),
        }

        await produce_raw_headers(kafka_bootstrap, changelog, 0, [entry(2)])
        await produce_raw_headers(kafka_bootstrap, changelog, 1, [entry(3)])
        stage.stores.clear()  # revoked, then assigned again
        assert await stage._restore([0, 1]) == 4
        assert set(stage.stores[0]) == keys(0, 1, 2) and set(stage.stores[1]) == keys(3)
        assert len(stage.restorer.paused()) == 2

        await produce_raw_headers(kafka_bootstrap, changelog, 2, [entry(4)])
        assert await stage._restore([2]) == 1  # another partition: assigned in their place
        assert set(stage.stores[2]) == keys(4)
        assert (
            stage.restorer.assignment() == stage.restorer.paused() == {TopicPartition(changelog, 2)}
        )
