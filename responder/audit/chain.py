"""The audit chain's arithmetic (pure): canonical form, hashing and verification.

Each record's `hash = HMAC-SHA256(key, prev_hash + canonical JSON of the record)`, with the
chain key from the settings (`RESPONDER_AUDIT__KEY`, never stored in the database); the record
keeps the key's id (`key_id`), so keys can be rotated and old records still verify with the
old key. The first record's `prev_hash` is `GENESIS`. Changing, inserting or deleting any record
breaks every hash after it, and `verify` names the first record whose stored hash or link does
not match. Without the key, a database writer cannot compute a valid hash for a record it
appends or rewrites.

Legacy records (written before keys, or without a configured key) have `key_id` None and
`hash = sha256(prev_hash + canonical JSON)`: they still verify, but anyone with write access
could have recomputed them; an unkeyed record after a keyed one is refused as a break.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

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
    key_id: str | None = None  # which chain key hashed it (not part of the hashed content)


@dataclass(frozen=True)
class ChainKey:
    """An HMAC key for the chain and its short id (stored with each record it hashed)."""

    id: str
    secret: bytes = field(repr=False)


def canonical(entry: Entry) -> str:
    """The record's hashed text: JSON with sorted keys, no spaces, non-ASCII as it is.

    That is `json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    default=str)`; for records of plain JSON values without floats orjson writes the same bytes
    about ten times faster (a property test holds them equal), so it writes those."""
    doc = hashed_fields(entry)
    if plain_json(doc):
        try:
            return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()
        except TypeError:  # orjson.JSONEncodeError: an integer past 64 bits, a lone surrogate
            pass
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def hashed_fields(entry: Entry) -> dict[str, Any]:
    """What of a record its hash covers (the time in UTC, to the microsecond)."""
    return {
        "seq": entry.seq,
        "at": utc_text(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "data": entry.data,
    }


def utc_text(at: datetime) -> str:
    """A record's time as its hash covers it. The records of one append share their time, so
    each distinct aware time is written once; a naive one is not cached (equal naive times may
    differ in `fold`, which `astimezone` reads)."""
    return _aware_utc_text(at) if at.tzinfo is not None else _written(at)


def _written(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


_aware_utc_text = lru_cache(maxsize=256)(_written)


def plain_json(value: Any, *, finite_floats: bool = False) -> bool:
    """Strings, integers, booleans, None, lists and dicts with string keys, exactly those types
    (and finite floats with `finite_floats`): what orjson writes as json does (floats aside), and
    what JSON hands back unchanged. Subclasses and anything `default=str` would write are not."""
    kind = type(value)
    if kind is dict:
        for k, v in value.items():
            if type(k) is not str:
                return False
            inner = type(v)
            if inner is str or inner is int or inner is bool or v is None:
                continue
            if not plain_json(v, finite_floats=finite_floats):
                return False
        return True
    if kind is list:
        return all(plain_json(v, finite_floats=finite_floats) for v in value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    return finite_floats and kind is float and math.isfinite(value)


def link(prev_hash: str, entry: Entry, key: ChainKey | None = None) -> str:
    """The record's hash: HMAC-SHA256 with `key`, or plain SHA-256 (legacy) without one."""
    message = (prev_hash + canonical(entry)).encode("utf-8")
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.digest(key.secret, message, "sha256").hex()  # one call: hmac.new's object costs


def expected_hash(
    prev_hash: str, entry: Entry, keys: Mapping[str, ChainKey]
) -> tuple[str | None, str | None]:
    """(hash the record should have, None) or (None, why it cannot be checked)."""
    if entry.key_id is None:
        return link(prev_hash, entry), None
    key = keys.get(entry.key_id)
    if key is None:
        return None, (
            f"hashed with chain key {entry.key_id!r}, which is not configured "
            "(RESPONDER_AUDIT__KEY / RESPONDER_AUDIT__OLD_KEYS)"
        )
    return link(prev_hash, entry, key), None


@dataclass(frozen=True)
class Broken:
    seq: int
    reason: str


def verify(
    records: Iterable[tuple[Entry, str, str]], keys: Mapping[str, ChainKey] | None = None
) -> tuple[int, Broken | None]:
    """Check (entry, prev_hash, hash) triples in seq order with the chain keys by id; return
    (count checked, first break)."""
    expected_prev = GENESIS
    count = 0
    last_seq = 0
    keyed = False
    for entry, prev_hash, stored in records:
        count += 1
        if entry.seq != last_seq + 1:
            return count, Broken(entry.seq, f"sequence gap: expected {last_seq + 1}")
        if prev_hash != expected_prev:
            return count, Broken(entry.seq, "prev_hash does not match the previous record's hash")
        if entry.key_id is None and keyed:
            return count, Broken(
                entry.seq, "an unkeyed record after keyed ones: written without the chain key"
            )
        expected, unknown = expected_hash(prev_hash, entry, keys or {})
        if unknown is not None:
            return count, Broken(entry.seq, unknown)
        if expected is None or not hmac.compare_digest(expected, stored):
            return count, Broken(entry.seq, "hash does not match the record's content")
        keyed = keyed or entry.key_id is not None
        expected_prev = stored
        last_seq = entry.seq
    return count, None
