"""The audit chain's arithmetic (pure): canonical form, hashing and verification.

Each record's `hash = sha256(prev_hash + canonical JSON of the record)`; the first record's
`prev_hash` is `GENESIS`. Changing, inserting or deleting any record breaks every hash after it,
and `verify` names the first record whose stored hash or link does not match.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True)
class Entry:
    """The hashed content of one audit record."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    data: dict[str, Any]


def canonical(entry: Entry) -> str:
    return json.dumps(
        {
            "seq": entry.seq,
            "at": entry.at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": entry.actor,
            "action": entry.action,
            "subject": entry.subject,
            "data": entry.data,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )


def link(prev_hash: str, entry: Entry) -> str:
    return hashlib.sha256((prev_hash + canonical(entry)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Broken:
    seq: int
    reason: str


def verify(records: Iterable[tuple[Entry, str, str]]) -> tuple[int, Broken | None]:
    """Check (entry, prev_hash, hash) triples in seq order; return (count checked, first break)."""
    expected_prev = GENESIS
    count = 0
    last_seq = 0
    for entry, prev_hash, stored in records:
        count += 1
        if entry.seq != last_seq + 1:
            return count, Broken(entry.seq, f"sequence gap: expected {last_seq + 1}")
        if prev_hash != expected_prev:
            return count, Broken(entry.seq, "prev_hash does not match the previous record's hash")
        if link(prev_hash, entry) != stored:
            return count, Broken(entry.seq, "hash does not match the record's content")
        expected_prev = stored
        last_seq = entry.seq
    return count, None
