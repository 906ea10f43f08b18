"""Window state of one store with the live groups of each rule counted and capped (pure).

A flood of distinct group values (resource ids, addresses) inside a window would otherwise grow
state without bound. When a rule has more than `cap` live groups, the groups whose newest event
is oldest in event time (ties: by key) are evicted until `EVICT_TO` of the cap remain: an evicted
group is closed as the engine closes a group whose window and suppress period ended (its events
are forgotten and its open incident takes no more events), so a later event of that group
starts afresh. The offline replay applies the same cap the same way to its single store; the
worker applies it per correlation partition. `evicted` lists what went, for the caller to write
tombstones, count and report.
"""

from __future__ import annotations

from collections import Counter

import orjson

from responder.correlation.window import GroupState, state_to_dict

EVICT_TO = 0.9
"""Eviction leaves this share of the cap, so it runs once per tenth of the cap's new groups."""


def rule_of(key: str) -> str:
    """The rule id of a group key (`rule|[values]`)."""
    return key.split("|", 1)[0]


class GroupStore(dict[str, GroupState]):
    """Group key → state. Add with `group` or `put` and remove with `drop`, so the counts hold."""

    def __init__(self, cap: int | None = None) -> None:
        super().__init__()
        self.cap = cap
        self.counts: Counter[str] = Counter()
        self.evicted: list[str] = []
        self.sweep_keys: list[str] = []  # the keys a sweep under way has still to look at

    def group(self, rule_id: str, key: str) -> GroupState:
        """The group's state, created (and the rule's cap enforced) if it has none."""
        state = self.get(key)
        if state is None:
            state = GroupState()
            self.put(key, state, rule_id)
        return state

    def put(self, key: str, state: GroupState, rule_id: str | None = None) -> None:
        rule_id = rule_of(key) if rule_id is None else rule_id
        if key not in self:
            self.counts[rule_id] += 1
        self[key] = state
        if self.cap is not None and self.counts[rule_id] > self.cap:
            self._evict(rule_id, spare=key)

    def drop(self, key: str) -> None:
        if self.pop(key, None) is not None:
            rule_id = rule_of(key)
            self.counts[rule_id] -= 1
            if not self.counts[rule_id]:
                del self.counts[rule_id]

    def _evict(self, rule_id: str, spare: str) -> None:
        assert self.cap is not None
        keep = max(1, int(self.cap * EVICT_TO))
        prefix = rule_id + "|"
        candidates = sorted(
            (state.max_time, key)
            for key, state in self.items()
            if key.startswith(prefix) and key != spare
        )
        for _, key in candidates[: self.counts[rule_id] - keep]:
            self.drop(key)
            self.evicted.append(key)

    def changelog(self, key: str) -> bytes | None:
        """The key's changelog value: its state as JSON, or None for a tombstone (no state, or
        an empty one, which is dropped)."""
        state = self.get(key)
        if state is not None and state.empty:
            self.drop(key)
            state = None
        return None if state is None else orjson.dumps(state_to_dict(state))

    def begin_sweep(self) -> int:
        """A sweep begins: the keys held now are the ones `sweep` looks at; how many."""
        self.sweep_keys = list(self)
        return len(self.sweep_keys)

    def sweep(self, horizon: float, limit: int) -> tuple[list[str], int, int]:
        """Up to `limit` more of the sweep's keys looked at; those still held whose newest event
        time is before `horizon` dropped: (the keys dropped, how many were looked at, how many
        are left to look at)."""
        looked = self.sweep_keys[-limit:] if limit > 0 else []
        del self.sweep_keys[len(self.sweep_keys) - len(looked) :]
        idle = [
            k for k in reversed(looked) if (s := self.get(k)) is not None and s.max_time < horizon
        ]
        for key in idle:
            self.drop(key)
        return idle, len(looked), len(self.sweep_keys)

    def take_evicted(self) -> list[str]:
        evicted, self.evicted = self.evicted, []
        return evicted
