"""What other Kafka clients write, offline: tombstones, null or binary header values, every codec.
(The same on the real broker with Kafka's Java producer: tests/integration/test_kafka_clients.py.)"""

from __future__ import annotations

import pytest
from aiokafka import codec

from responder.storage.database import make_engine
from responder.streams.failures import TOMBSTONE
from responder.streams.ingest_batch import DeadLetter, IngestBatch
from responder.streams.playbooks import Wakeup
from responder.streams.reports import BadRequest, ReportStage, request_of
from tests.support.signing import GATE
from tests.unit.test_hostile_stages import (
    KAFKA,
    RULES,
    OfflineCommands,
    Recorded,
    batch_of,
    event,
    message,
    routed_ids,
)


class OfflineReports(Recorded, ReportStage):
    pass


@pytest.mark.parametrize("name", ["gzip", "snappy", "lz4", "zstd"])
def test_every_codec_kafka_producers_use_is_readable(name: str) -> None:
    """aiokafka decodes snappy, lz4 and zstd only with its extras (cramjam) installed."""
    data = b'{"id": "e-1", "type": "secret.leaked"}' * 50
    encode, decode = getattr(codec, f"{name}_encode"), getattr(codec, f"{name}_decode")
    assert decode(encode(data)) == data


def test_an_ingest_tombstone_goes_to_the_dlq_as_such() -> None:
    """A null value is a tombstone: dead-lettered with that reason, the batch goes on."""
    outcome = IngestBatch(RULES, 1).handle([event("a"), None, event("b")])
    assert outcome.dead == [DeadLetter(1, TOMBSTONE, [])]
    assert sorted(routed_ids(outcome.messages[0])) == ["a", "b"]


async def test_a_report_or_command_tombstone_goes_to_the_dlq_as_such() -> None:
    """The reports and commands stages dead-letter a null value with the tombstone reason."""
    reports = OfflineReports(KAFKA)
    tombstone = message(b"", 0, "reports")
    tombstone.value = None
    await reports.handle({next(iter(batch_of([], "reports"))): [tombstone]})
    assert reports.rejected == [(0, TOMBSTONE, [])] and reports.finished == 1

    commands = OfflineCommands(KAFKA, make_engine("sqlite://"), Wakeup(), GATE)  # never reached
    await commands.handle({next(iter(batch_of([], "commands"))): [tombstone]})
    assert [(o, r) for o, r, _ in commands.rejected] == [(0, TOMBSTONE)]


def test_null_and_binary_header_values_never_crash_the_reports_stage() -> None:
    """A null header value reads as empty (the format header then means `auto`); bytes that
    are not UTF-8 where text is expected make a clear refusal, not an exception."""
    msg = message(b'{"matches": []}', 0, "reports")
    msg.headers = [("responder.format", None), ("trace", b"\xff\xfe")]
    assert request_of(msg).format == "auto"
    msg.headers = [("responder.format", b"\xff\xfe")]
    with pytest.raises(BadRequest, match="unreadable report headers"):
        request_of(msg)
    msg.headers = [("responder.format", b"trivy"), ("responder.asset", None)]
    assert request_of(msg).context.asset is None
