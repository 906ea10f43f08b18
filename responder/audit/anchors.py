"""Anchors of the audit chain (pure): the head (`seq`, `hash`) written down where a database
writer cannot change it (a Kafka topic, an append-only file), and what verifying them found.

A keyed chain stops a database writer from forging records, but not from deleting the newest
ones, nor (with the key) from rewriting the chain. An anchor taken earlier catches both: the
anchored record must still exist (else: truncated) with the anchored hash (else: re-chained).
Records after the newest anchor are reported as not anchored yet: the next anchor covers them.

One anchor is one JSON object: `{"seq": 42, "hash": "<64 hex>", "at": "<RFC 3339>"}`; a line or
message that is not one is skipped and counted (`parse`), never trusted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

_HASH = re.compile(r"^[0-9a-f]{64}$")
MAX_ANCHOR_BYTES = 512
MAX_ANCHORS_CHECKED = 1000  # the newest ones; older anchors are covered by the chain's links


@dataclass(frozen=True, order=True)
class Anchor:
    seq: int
    hash: str
    at: datetime = field(compare=False)

    def to_json(self) -> str:
        at = self.at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return json.dumps({"seq": self.seq, "hash": self.hash, "at": at}, sort_keys=True)


def parse(raw: bytes | str) -> Anchor | None:
    """The anchor in one line or message, or None for anything else."""
    if len(raw) > MAX_ANCHOR_BYTES:
        return None
    try:
        value = json.loads(raw)
        seq, digest, at = value["seq"], value["hash"], value["at"]
        moment = datetime.fromisoformat(str(at).replace("Z", "+00:00"))
    except (ValueError, TypeError, KeyError):
        return None
    if type(seq) is not int or not 0 < seq < 2**63 or not isinstance(digest, str):
        return None
    if _HASH.match(digest) is None or moment.tzinfo is None:
        return None
    return Anchor(seq, digest, moment)


def newest(anchors: list[Anchor], limit: int = MAX_ANCHORS_CHECKED) -> list[Anchor]:
    """The `limit` anchors with the highest seq, distinct by (seq, hash), highest first."""
    return sorted(set(anchors), reverse=True)[:limit]


@dataclass
class AnchorCheck:
    """What checking the chain against its anchors found: `problems` empty means they hold."""

    checked: int = 0
    skipped: int = 0  # lines or messages that were not anchors
    newest: Anchor | None = None
    unanchored: int = 0  # records after the newest anchor
    problems: list[str] = field(default_factory=list)
