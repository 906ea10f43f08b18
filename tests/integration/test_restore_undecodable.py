"""A changelog record the Kafka client cannot decode, on the real broker: the restore notes it
in the DLQ by position, passes it (and the one after it in the same batch, which the client
cannot decode either) and restores every other window; it used to escape the assignment and
leave the partition without state on every restart."""

from __future__ import annotations

import orjson
import pytest

from responder.streams.salvage import REASON
from responder.streams.topics import ensure_topics
from tests.support.changelog import entry, restoring
from tests.support.harness import consume_all, kafka_settings
from tests.support.java_client import RawKey, Record, produce_raw_headers

pytestmark = [pytest.mark.integration]


async def test_an_undecodable_changelog_record_is_noted_and_passed_at_restore(
    kafka_bootstrap: str, unique: str
) -> None:
    kafka = kafka_settings(kafka_bootstrap, unique)
    await ensure_topics(kafka)
    changelog = kafka.topics.changelog
    bad = Record(entry(2).key, entry(2).value, [(RawKey(b"\xff\xfe-not-utf8"), b"v")])
    first = [entry(0), entry(1), bad, entry(3)]  # the client cannot decode past the bad record
    await produce_raw_headers(kafka_bootstrap, changelog, 0, first)
    await produce_raw_headers(kafka_bootstrap, changelog, 0, [entry(4), entry(5)])

    async with restoring(kafka) as stage:
        restored = await stage._restore([0])

    kept = {f'by-ip|["10.0.0.{n}"]' for n in (0, 1, 4, 5)}
    assert restored == 4 and set(stage.stores[0]) == kept
    dead = await consume_all(kafka_bootstrap, kafka.topics.dlq, 2, timeout=10)
    notes = sorted((orjson.loads(d.value) for d in dead), key=lambda n: n["offset"])
    assert [(n["topic"], n["partition"], n["offset"]) for n in notes] == [
        (changelog, 0, 2),
        (changelog, 0, 3),
    ]
    assert all(dict(d.headers)["responder.reason"] == REASON.encode() for d in dead)
