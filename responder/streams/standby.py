"""A stage that joins its consumer group only while the group has a backlog: the extra sinks.

On PostgreSQL the default worker runs a sink per core (`supervisor.storing_processes`): two sinks
store ~30 % more than one while the stream is full. On a quiet stream the second one only costs:
each sink pays for its own fetches and for a transaction per fetch, and a transaction's fixed
part (the audit chain's lock and head, the reads, the commit) costs about as much CPU as twenty
changes. At 100 events/s, each opening an incident, the default worker used 0.13 cores with the
extra sink on standby against 0.15 with both in the group (`bench/pipeline.py`, interleaved).

So the default layout's extra sinks start outside the group (`Standby`). Once a second
(`PROBE_S`, in a task beside the stage's loop, `TopicStage.watch`; every quarter second while a
backlog of an eighth of `join` or more grows: a burst's backlog was joined at ~7,000 changes
instead of ~17,000-21,000) one reads the group's backlog:
the end offsets of the topic's partitions minus the group's committed offsets (`group_backlog`).
It joins once the backlog reaches `join` records, or once a backlog has waited `stall_s` without
the group committing anything (the lead sink down: its process restarting, say; a trickle would
take long to reach `join`). It leaves again (everything it handled committed first) once the
backlog has stayed under a quarter of `join` for `leave_after_s`, so a rate that needs two sinks
keeps them. The backlog counts what the lead has fetched and not yet committed (its gather and
commit interval, ~0.5 s of the stream), so extra sinks also join, early, at ~8,000 changes/s
that one sink might still have kept up with. Each join and leave rebalances the group (a burst
of 4,000 makes one join and, a minute after it is stored, one leave). A static member
(`kafka.instance_id`) sends no LeaveGroup, so its partitions would wait out the session after it
left: it is always a member.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

PROBE_S = 1.0  # how often a stage on standby (or an extra one in the group) reads the backlog
PROBE_TIMEOUT_S = 5.0  # a read that takes longer counts as not read (the coordinator away)
JOIN_BACKLOG = 4000  # the default layout's extra sinks join at this many changes (2 batches)
LEAVE_AFTER_S = 60.0  # ... and leave after the backlog stayed under a quarter of it this long
STALL_S = 15.0  # ... and join any backlog the group has not committed from for this long
WARN_AFTER = 30  # backlog reads failed in a row before a warning (once until one succeeds)


@dataclass(frozen=True)
class Backlog:
    records: int  # not committed by the group yet, over every partition
    committed: int  # the group's committed offsets, summed: progress shows as a change


@dataclass
class Standby:
    """When a stage on standby is a member of its group, from the backlogs it reads (pure)."""

    join: int  # a backlog of this many records makes it join
    leave_after_s: float = LEAVE_AFTER_S
    stall_s: float = STALL_S
    joined: bool = False
    _low_since: float | None = None  # since when the backlog has been under `leave`
    _committed: int | None = None  # the group's committed offsets at the last read ...
    _still_since: float = 0.0  # ... unchanged (or nothing waiting) since then
    _last_records: int | None = None  # the backlog at the last read (`next_probe_s`)

    def next_probe_s(self, backlog: Backlog | None) -> float:
        """Seconds until the next read after reading `backlog` (None: not read): a quarter of
        `PROBE_S` while out of the group with a backlog of an eighth of `join` or more that
        grew since the last read (a burst building up: join it early), else `PROBE_S` (what an
        idle or steady stream costs, whatever its rate)."""
        records = None if backlog is None else backlog.records
        grew = records is not None and records > (self._last_records or 0)
        building = grew and records is not None and records >= max(1, self.join // 8)
        self._last_records = records
        return PROBE_S / 4 if building and not self.joined else PROBE_S

    @property
    def leave(self) -> int:
        """A backlog under this many records, for `leave_after_s`, makes it leave."""
        return max(1, self.join // 4)

    def decide(self, backlog: Backlog, now: float) -> bool:
        """Whether the stage should be a member, the group's `backlog` read at `now`
        (monotonic seconds)."""
        if backlog.committed != self._committed or backlog.records == 0:
            self._committed, self._still_since = backlog.committed, now
        stalled = backlog.records > 0 and now - self._still_since >= self.stall_s
        if not self.joined:
            self.joined = backlog.records >= self.join or stalled
            self._low_since = None
        elif backlog.records >= self.leave:
            self._low_since = None
        elif self._low_since is None:
            self._low_since = now
        elif now - self._low_since >= self.leave_after_s:
            self.joined = False
            self._low_since = None
        return self.joined


async def group_backlog(consumer: AIOKafkaConsumer, topic: str, partitions: int) -> Backlog:
    """What the consumer's group has not committed yet of `topic`, over every partition (the
    first `partitions` until the client knows the topic; a partition never committed counts
    from its beginning, where the group would start). Works outside the group."""
    known = consumer.partitions_for_topic(topic) or range(partitions)
    tps = [TopicPartition(topic, p) for p in sorted(known)]
    ends = await consumer.end_offsets(tps)
    committed = await committed_offsets(consumer, tps)
    starts: dict[TopicPartition, int] = {}
    if any(committed.get(tp) is None for tp in tps):
        starts = await consumer.beginning_offsets(tps)
    at: dict[TopicPartition, int] = {}
    for tp in tps:
        offset = committed.get(tp)
        at[tp] = starts[tp] if offset is None else offset
    return Backlog(
        records=sum(max(0, ends[tp] - at[tp]) for tp in tps),
        committed=sum(at.values()),
    )


async def committed_offsets(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """The group's committed offset of each partition (None: never committed), in one request
    where the client exposes it (its group coordinator's `fetch_committed_offsets`, which
    `committed` calls for one partition at a time; `tests/unit/test_standby.py` holds the
    installed client to it), else one request a partition."""
    coordinator: Any = getattr(consumer, "_coordinator", None)
    fetch = getattr(coordinator, "fetch_committed_offsets", None)
    if fetch is None:
        found = await asyncio.gather(*(consumer.committed(tp) for tp in tps))
        return dict(zip(tps, found, strict=True))
    offsets = await fetch(tps)
    return {
        tp: offsets[tp].offset if tp in offsets and offsets[tp].offset >= 0 else None for tp in tps
    }
