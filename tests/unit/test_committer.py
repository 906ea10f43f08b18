"""The stage loop's committer: offsets go out in the background, only behind acknowledged sends.

The consumer here records the commits it is asked for (the ordering logic is what is tested;
tests/integration/test_clean_edges.py runs it against the broker).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import TopicPartition

from responder.streams.kafka import Committer, run_beside

P0 = TopicPartition("events", 0)
P1 = TopicPartition("events", 1)


class Commits:
    """The two calls a Committer makes of its consumer."""

    def __init__(self, assigned: set[TopicPartition] | None = None) -> None:
        self.assigned = assigned if assigned is not None else {P0, P1}
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


def committed(consumer: Commits) -> dict[TopicPartition, int]:
    """What the group's committed offsets are after every commit so far."""
    offsets: dict[TopicPartition, int] = {}
    for commit in consumer.commits:
        offsets.update(commit)
    return offsets


def send() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


async def settle() -> None:
    """Let the committer's task run until it waits on something."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_an_offset_is_committed_only_after_its_sends_and_those_before_it() -> None:
    consumer = Commits()
    committer = Committer(consumer, every_s=0.0)
    first, second = send(), send()
    task = asyncio.ensure_future(committer.run())
    try:
        await committer.hand_over({P0: 10}, [first])
        await committer.hand_over({P1: 5}, [])  # nothing of its own to wait for, but behind P0
        await committer.hand_over({P0: 20}, [second])
        await settle()
        assert consumer.commits == []  # the first batch's record is not acknowledged yet

        first.set_result(None)
        await settle()
        assert committed(consumer) == {P0: 10, P1: 5}  # not past the unacknowledged 20

        second.set_result(None)
        await settle()
        assert committed(consumer) == {P0: 20, P1: 5}
    finally:
        task.cancel()


async def test_a_failed_send_stops_the_committer_and_nothing_after_it_is_committed() -> None:
    consumer = Commits()
    committer = Committer(consumer, every_s=0.0)
    failed, fine = send(), send()
    await committer.hand_over({P0: 3}, [failed])
    await committer.hand_over({P0: 7}, [fine])
    fine.set_result(None)
    failed.set_exception(RuntimeError("broker refused"))
    with pytest.raises(RuntimeError, match="broker refused"):
        await committer.run()
    assert consumer.commits == []


async def test_commits_are_coalesced_and_drain_commits_the_rest_at_once() -> None:
    """A quiet stream pays a commit per interval, not per batch; stopping commits it all."""
    consumer = Commits()
    committer = Committer(consumer, every_s=3600.0)
    task = asyncio.ensure_future(committer.run())
    try:
        for offset in range(1, 51):
            await committer.hand_over({P0: offset}, [])
            await settle()
        assert consumer.commits == [{P0: 1}]  # the first went out; the interval holds the rest
        assert await committer.drain()
        assert consumer.commits == [{P0: 1}, {P0: 50}]
    finally:
        task.cancel()


async def test_drain_waits_for_every_send_handed_over() -> None:
    consumer = Commits()
    committer = Committer(consumer, every_s=3600.0)
    pending = send()
    await committer.hand_over({P1: 4}, [pending])
    asyncio.get_running_loop().call_later(0.01, pending.set_result, None)
    assert await committer.drain()
    assert consumer.commits == [{P1: 4}]


async def test_offsets_of_a_partition_no_longer_assigned_are_left_to_its_new_owner() -> None:
    consumer = Commits(assigned={P1})
    committer = Committer(consumer, every_s=0.0)
    await committer.hand_over({P0: 9, P1: 2}, [])
    assert await committer.drain()
    assert consumer.commits == [{P1: 2}]


async def test_hand_over_waits_while_too_many_batches_are_unacknowledged() -> None:
    consumer = Commits()
    committer = Committer(consumer, every_s=0.0, max_in_flight=2)
    sends = [send() for _ in range(3)]
    task = asyncio.ensure_future(committer.run())
    try:
        await committer.hand_over({P0: 1}, [sends[0]])
        await committer.hand_over({P0: 2}, [sends[1]])
        third = asyncio.ensure_future(committer.hand_over({P0: 3}, [sends[2]]))
        await settle()
        assert not third.done()  # the loop would wait here instead of fetching more
        sends[0].set_result(None)
        await settle()
        assert third.done()
    finally:
        task.cancel()


async def test_run_beside_raises_the_helpers_failure_and_cancels_the_loop() -> None:
    cancelled = asyncio.Event()

    async def loop() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async def helper() -> None:
        raise ValueError("commit broke")

    with pytest.raises(ValueError, match="commit broke"):
        await run_beside(loop(), helper())
    assert cancelled.is_set()


async def test_a_cancel_as_a_batch_is_handed_over_stops_the_committer() -> None:
    """Found: the wait between commits was `asyncio.wait_for`, which on Python 3.11 returns
    when the awaited event is set in the same turn as the cancellation, and the cancellation
    is lost: the committer ran on, and a worker stopping on SIGTERM waited for it forever
    (`asyncio.wait_for` is banned by the linter now)."""
    committer = Committer(Commits(), every_s=60.0)
    committer.acked = {P0: 3}  # settled, its commit due in a minute: the wait has a timeout
    committer.last = time.monotonic()
    task = asyncio.ensure_future(committer.run())
    try:
        await settle()
        committer.changed.set()
        task.cancel()
        await asyncio.wait([task], timeout=5)
        assert task.cancelled()
    finally:
        task.cancel()
