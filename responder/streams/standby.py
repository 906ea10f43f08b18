"""A stage that joins its consumer group only while the group has a backlog: the extra sinks.

On PostgreSQL the default worker runs a sink per core (`supervisor.storing_processes`): two sinks
store ~30 % more than one while the stream is full. On a quiet stream the second one only costs:
each sink pays for its own fetches and for a transaction per fetch, and a transaction's fixed
part (the audit chain's lock and head, the reads, the commit) costs about as much CPU as twenty
changes. At 100 events/s, each opening an incident, the default worker used 0.11 cores with one
sink against 0.13 with two (`bench/pipeline.py`, interleaved).

So the default layout's extra sinks start outside the group (`Standby`). Once a second
(`PROBE_S`) one reads the group's backlog: the end offsets of the topic's partitions minus the
group's committed offsets (`group_backlog`). It joins once the backlog reaches `join` records and
leaves again (everything it handled committed first) once the backlog has stayed under a
quarter of that for `leave_after_s`, so a rate that needs two sinks keeps them, and one burst
does not make them come and go. The lead sink is always a member: no record waits for an extra
one to be stored; a backlog only spreads sooner. A static member (`kafka.instance_id`) sends no
LeaveGroup, so its partitions would wait out the session after it left: it is always a member.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

PROBE_S = 1.0  # how often a stage on standby (or an extra one in the group) reads the backlog
PROBE_TIMEOUT_S = 5.0  # a read that takes longer counts as not read (the coordinator away)
JOIN_BACKLOG = 4000  # the default layout's extra sinks join at this many changes (2 batches)
LEAVE_AFTER_S = 60.0  # ... and leave after the backlog stayed under a quarter of it this long


@dataclass
class Standby:
    """When a stage on standby is a member of its group, from the backlogs it reads (pure)."""

    join: int  # a backlog of this many records makes it join
    leave_after_s: float = LEAVE_AFTER_S
    joined: bool = False
    _low_since: float | None = None  # since when the backlog has been under `leave`

    @property
    def leave(self) -> int:
        """A backlog under this many records, for `leave_after_s`, makes it leave."""
        return max(1, self.join // 4)

    def decide(self, backlog: int, now: float) -> bool:
        """Whether the stage should be a member, the group's `backlog` read at `now`
        (monotonic seconds)."""
        if not self.joined:
            self.joined = backlog >= self.join
            self._low_since = None
        elif backlog >= self.leave:
            self._low_since = None
        elif self._low_since is None:
            self._low_since = now
        elif now - self._low_since >= self.leave_after_s:
            self.joined = False
            self._low_since = None
        return self.joined


async def group_backlog(consumer: AIOKafkaConsumer, topic: str, partitions: int) -> int:
    """The records of `topic` the consumer's group has not committed yet, over every partition
    (the first `partitions` until the client knows the topic; a partition never committed
    counts from its beginning, where the group would start). Works outside the group."""
    known = consumer.partitions_for_topic(topic) or range(partitions)
    tps = [TopicPartition(topic, p) for p in sorted(known)]
    ends = await consumer.end_offsets(tps)
    committed = await asyncio.gather(*(consumer.committed(tp) for tp in tps))
    starts: dict[TopicPartition, int] = {}
    if any(offset is None for offset in committed):
        starts = await consumer.beginning_offsets(tps)
    return sum(
        max(0, ends[tp] - (starts[tp] if offset is None else offset))
        for tp, offset in zip(tps, committed, strict=True)
    )
