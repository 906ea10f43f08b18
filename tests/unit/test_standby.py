"""When a stage on standby is a member of its group (`streams/standby.py`), how it joins and
leaves (`TopicStage.watch`, `TopicStage.follow`), and which processes of the default layout
wait on standby."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiokafka.consumer.group_coordinator import GroupCoordinator
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from responder.settings import KafkaSettings
from responder.streams import kafka as kafka_stages
from responder.streams import standby as standby_module
from responder.streams.kafka import TopicStage
from responder.streams.standby import PROBE_S, Backlog, Standby
from responder.streams.supervisor import extra_sink, stage_groups, worker_layout


def waiting(records: int, committed: int = 0) -> Backlog:
    return Backlog(records=records, committed=committed)


def test_it_joins_once_the_backlog_reaches_the_threshold() -> None:
    standby = Standby(join=100)
    assert [standby.decide(waiting(n, n), t) for t, n in enumerate([0, 40, 99])] == [False] * 3
    assert standby.decide(waiting(100, 100), 3.0) is True
    assert standby.joined


def test_it_joins_a_backlog_that_waited_with_nothing_committed() -> None:
    """The lead sink down: a trickle that would take long to reach the threshold waits no more
    than `stall_s` once nothing is committed."""
    standby = Standby(join=4000, stall_s=10)
    assert standby.decide(waiting(3, committed=50), 0.0) is False
    assert standby.decide(waiting(4, committed=50), 9.9) is False
    assert standby.decide(waiting(5, committed=50), 10.0) is True


def test_a_group_that_commits_or_has_nothing_waiting_is_not_stalled() -> None:
    moving, idle = Standby(join=4000, stall_s=10), Standby(join=4000, stall_s=10)
    for t in range(100):
        assert moving.decide(waiting(30, committed=t), float(t)) is False  # the lead stores
        # nothing waiting at each other read: a lone change stored each time
        assert idle.decide(waiting(t % 2, committed=0), float(t)) is False


def test_it_leaves_only_after_the_backlog_stayed_under_a_quarter_for_the_whole_time() -> None:
    standby = Standby(join=100, leave_after_s=10, joined=True)
    assert standby.leave == 25
    assert standby.decide(waiting(24), 0.0) is True  # low since 0
    assert standby.decide(waiting(10, 1), 9.9) is True
    assert standby.decide(waiting(25, 2), 10.0) is True  # back at a quarter: the clock restarts
    assert standby.decide(waiting(0, 3), 11.0) is True  # low since 11
    assert standby.decide(waiting(0, 3), 20.9) is True
    assert standby.decide(waiting(0, 3), 21.0) is False
    assert not standby.joined
    assert standby.decide(waiting(99, 4), 22.0) is False  # and it takes a threshold to return


def test_a_backlog_between_the_thresholds_keeps_it_where_it_is() -> None:
    outside, inside = Standby(join=100), Standby(join=100, leave_after_s=1, joined=True)
    for t in range(100):
        assert outside.decide(waiting(50, t), float(t)) is False
        assert inside.decide(waiting(50, t), float(t)) is True


def test_a_building_backlog_is_read_four_times_as_often_until_it_joins() -> None:
    """Idle, steady or unread: once a second; out of the group with an eighth of the threshold
    waiting and growing: every quarter second, so a burst is joined sooner; in the group: once
    a second."""
    standby = Standby(join=4000)
    assert standby.next_probe_s(None) == PROBE_S
    assert standby.next_probe_s(waiting(0)) == PROBE_S
    assert standby.next_probe_s(waiting(499)) == PROBE_S  # 100 changes/s, say
    assert standby.next_probe_s(waiting(500)) == PROBE_S / 4
    assert standby.next_probe_s(waiting(2000)) == PROBE_S / 4
    assert standby.next_probe_s(waiting(2000)) == PROBE_S  # a steady rate the lead keeps up with
    assert standby.next_probe_s(None) == PROBE_S
    assert standby.next_probe_s(waiting(2500)) == PROBE_S / 4  # (an unread backlog counts 0)
    standby.decide(waiting(4000), 0.0)
    assert standby.joined and standby.next_probe_s(waiting(9000)) == PROBE_S
    tiny = Standby(join=3)  # an eighth of the threshold rounds to 0: idle stays once a second
    assert tiny.next_probe_s(waiting(0)) == PROBE_S and tiny.next_probe_s(waiting(0)) == PROBE_S


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


def test_the_committed_offsets_of_every_partition_are_read_in_one_request() -> None:
    """`standby.committed_offsets` calls the client's coordinator for all partitions at once;
    the installed aiokafka has it (else it reads one partition a request)."""
    assert callable(GroupCoordinator.fetch_committed_offsets)


class _Calls:
    """A consumer and a committer that record what the stage asks of them, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.calls.append(f"subscribe {topics[0]} {type(listener).__name__}")

    def unsubscribe(self) -> None:
        self.calls.append("unsubscribe")

    async def drain(self) -> bool:
        self.calls.append("drain")
        return True


async def test_it_joins_with_the_revocation_drain_and_leaves_after_committing() -> None:
    standby = Standby(join=5)
    stage = TopicStage(KafkaSettings(), "t", "sink", 10, standby=standby)
    calls = _Calls()
    stage.consumer, stage.committer = cast(Any, calls), cast(Any, calls)
    stage.lag.gauge.set(7)
    with capture_logs() as logs:
        assert await stage.follow(standby) is False and calls.calls == []
        standby.joined = True
        assert await stage.follow(standby) is True
        assert await stage.follow(standby) is True  # nothing more to do
        standby.joined = False
        assert await stage.follow(standby) is False
    assert calls.calls == ["subscribe t DrainOnRevoke", "drain", "unsubscribe"]
    assert [e["event"] for e in logs] == [
        "backlog: joined the group",
        "backlog gone: left the group",
    ]
    # no stale lag from a sink out of the group
    assert REGISTRY.get_sample_value("responder_consumer_lag", {"stage": "sink"}) == 0


class _Stalled:
    """A consumer whose group coordinator never answers (the client retries an offset read
    until it does)."""

    def __init__(self) -> None:
        self.reads = 0  # backlog reads begun

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1}

    async def end_offsets(self, tps: list[Any]) -> dict[Any, int]:
        self.reads += 1
        return dict.fromkeys(tps, 10_000)

    async def committed(self, tp: Any) -> int:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_backlog_that_cannot_be_read_leaves_it_where_it_is_and_warns_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka_stages, "PROBE_TIMEOUT_S", 0.01)
    monkeypatch.setattr(standby_module, "PROBE_S", 0.01)
    monkeypatch.setattr(kafka_stages, "WARN_AFTER", 3)
    standby = Standby(join=5)
    stage = TopicStage(KafkaSettings(), "t", "sink", 10, standby=standby)
    consumer = _Stalled()
    stage.consumer = cast(Any, consumer)
    with capture_logs() as logs:
        watching = asyncio.ensure_future(stage.watch(standby))
        try:  # reads well past the third, each timed out (~15 in 0.3 s on an idle machine)
            async with asyncio.timeout(10):
                while consumer.reads < 7:
                    await asyncio.sleep(0.01)
        finally:
            watching.cancel()
    assert not standby.joined and not stage.decided.is_set()
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["reads_failed"] == 3
