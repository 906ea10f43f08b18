"""When a stage on standby is a member of its group (`streams/standby.py`), and which processes
of the default layout wait on standby."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from responder.settings import KafkaSettings
from responder.streams import kafka as kafka_stages
from responder.streams.kafka import TopicStage
from responder.streams.standby import Standby
from responder.streams.supervisor import extra_sink, stage_groups, worker_layout


def test_it_joins_once_the_backlog_reaches_the_threshold() -> None:
    standby = Standby(join=100)
    assert [standby.decide(backlog, t) for t, backlog in enumerate([0, 40, 99])] == [False] * 3
    assert standby.decide(100, 3.0) is True
    assert standby.joined


def test_it_leaves_only_after_the_backlog_stayed_under_a_quarter_for_the_whole_time() -> None:
    standby = Standby(join=100, leave_after_s=10, joined=True)
    assert standby.leave == 25
    assert standby.decide(24, 0.0) is True  # low since 0
    assert standby.decide(10, 9.9) is True
    assert standby.decide(25, 10.0) is True  # back at a quarter: the clock starts again
    assert standby.decide(0, 11.0) is True  # low since 11
    assert standby.decide(0, 20.9) is True
    assert standby.decide(0, 21.0) is False
    assert not standby.joined
    assert standby.decide(99, 22.0) is False  # and it takes a full threshold to come back


def test_a_backlog_between_the_thresholds_keeps_it_where_it_is() -> None:
    outside, inside = Standby(join=100), Standby(join=100, leave_after_s=1, joined=True)
    for t in range(100):
        assert outside.decide(50, float(t)) is False
        assert inside.decide(50, float(t)) is True


def test_a_threshold_of_one_still_leaves_at_zero() -> None:
    standby = Standby(join=1, leave_after_s=0, joined=True)
    assert standby.leave == 1
    assert standby.decide(1, 0.0) is True
    assert standby.decide(0, 1.0) is True  # low since 1
    assert standby.decide(0, 1.0) is False


def test_only_the_default_layouts_extra_sinks_wait_on_standby() -> None:
    layout = worker_layout("all", None, storing=3)
    extra = [extra_sink("all", None, slot) for slot in range(len(layout))]
    assert extra == [False] * len(stage_groups()) + [True, True]
    assert [stages for stages, on in zip(layout, extra, strict=True) if on] == ["sink", "sink"]
    # whole pipelines (a process count) and chosen stages are members as a user started them
    assert not any(extra_sink("all", 2, slot) for slot in range(2))
    assert not any(extra_sink("sink", None, slot) for slot in range(8))


def test_a_static_member_is_never_on_standby() -> None:
    """A static member (an instance id) sends no LeaveGroup: its partitions would wait out the
    session timeout after it left."""
    plain = TopicStage(KafkaSettings(), "t", "sink", 10, standby=Standby(join=5))
    static = TopicStage(KafkaSettings(instance_id="a"), "t", "sink", 10, standby=Standby(join=5))
    assert plain.standby is not None and static.standby is None


class _Stalled:
    """A consumer whose group coordinator never answers (the client retries an offset read
    until it does)."""

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1}

    async def end_offsets(self, tps: list[Any]) -> dict[Any, int]:
        return dict.fromkeys(tps, 10_000)

    async def committed(self, tp: Any) -> int:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_backlog_that_cannot_be_read_in_time_leaves_it_where_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka_stages, "PROBE_TIMEOUT_S", 0.05)
    stage = TopicStage(KafkaSettings(), "t", "sink", 10, standby=Standby(join=5))
    stage.consumer = cast(Any, _Stalled())
    assert await asyncio.wait_for(stage.member(), 2) is False
    assert stage.standby is not None and not stage.standby.joined
    assert await stage.member() is False  # read again only after PROBE_S
