"""The audit chain's compiled path, when the `responder-native` package (`native/`) is built.

`chained` hashes a batch of masked records as `store.append`'s Python path does (`chain.link`
over `chain.canonical`), and for PostgreSQL writes their rows in COPY's text format, in one
call: the sink appends thousands of records a batch, and in Python the canonical text, the
HMAC and the row cost more than the rest of the sink's work on them. It takes plain JSON data
only (exact str, int, bool, None, finite float, list, dict with str keys) and answers None for
a batch holding anything else, which the Python path then appends. Property tests hold the two
paths to the same hashes and rows (`tests/unit/test_audit_native.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from responder.audit.chain import ChainKey, utc_text

try:
    import responder_native
except ImportError:  # not built: the Python path appends
    responder_native = None  # type: ignore[assignment]

COLUMNS = ("seq", "at", "actor", "action", "subject", "data", "prev_hash", "hash", "key_id")
"""The columns of the rows `chained` writes for COPY, in their order."""


@dataclass(frozen=True, slots=True)
class Chained:
    hashes: list[str]  # each record's hash, in order
    copy: bytes | None  # the rows in COPY's text format (COLUMNS), when asked for


def available() -> bool:
    return responder_native is not None


def chained(
    records: list[tuple[str, str, str, dict[str, Any]]],
    *,
    first: int,
    prev: str,
    at: datetime,
    key: ChainKey | None,
    copy: bool,
) -> Chained | None:
    """The hashes of `records` ((actor, action, subject, masked data)) chained from sequence
    number `first` after `prev`, stamped `at`; with `copy`, their rows for COPY too (the time
    written as the driver writes it: `str(at)`). None: not built, or a record it does not
    take (the caller appends with the Python path)."""
    if responder_native is None:
        return None
    answer = responder_native.audit_chain(
        records,
        first,
        prev,
        utc_text(at),
        None if key is None else key.secret,
        None if key is None else key.id,
        str(at) if copy else None,
    )
    if answer is None:
        return None
    hashes, rows = answer
    return Chained(hashes, rows)
