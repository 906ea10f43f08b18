"""Changelog entries of one rule's windows, as a flush writes them (the restore tests)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import orjson

from responder.correlation.rules import RuleSet
from responder.correlation.window import GroupState, state_to_dict, window_event
from responder.settings import CorrelationSettings, KafkaSettings
from responder.streams.correlate import CorrelateStage
from tests.support.builders import event, rule
from tests.support.java_client import Record

BY_IP = rule(id="by-ip", match={"type": "test.seen"}, group_by=["actor.ip"], window="10m")


def entry(n: int) -> Record:
    """The changelog record of the window of actor 10.0.0.`n`: one event."""
    state = GroupState()
    state.add(window_event(BY_IP, event(f"e{n}", actor={"ip": f"10.0.0.{n}"}), 1000.0 + n))
    return Record(key_of(n).encode(), orjson.dumps(state_to_dict(state)))


def key_of(n: int) -> str:
    return f'by-ip|["10.0.0.{n}"]'


@contextlib.asynccontextmanager
async def restoring(kafka: KafkaSettings) -> AsyncIterator[CorrelateStage]:
    """A correlation stage of BY_IP with only the clients a restore uses started."""
    stage = CorrelateStage(kafka, RuleSet([BY_IP]), CorrelationSettings())
    stage._clients()
    await stage.producer.start()
    await stage.restorer.start()
    try:
        yield stage
    finally:
        await stage.restorer.stop()
        await stage.producer.stop()
