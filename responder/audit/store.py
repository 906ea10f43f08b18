"""The audit log table and its two operations: append (serialized) and read for verification.

Appends take a database-wide lock first (PostgreSQL advisory transaction lock; SQLite's write
lock via BEGIN IMMEDIATE), so concurrent writers cannot fork the chain. Every record's data is
masked (`security.redact.scrub_each`: secrets by key and by value) before it is hashed and
stored, whoever the caller is. On PostgreSQL a trigger installed by the migrations refuses
UPDATE and DELETE on the table (on SQLite too, since 0004).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Engine, func, text
from sqlmodel import Field, Session, SQLModel, col, select

from responder.audit import native
from responder.audit.anchors import Anchor, AnchorCheck, newest
from responder.audit.chain import (
    GENESIS,
    Broken,
    ChainKey,
    Entry,
    expected_hash,
    link,
    plain_json,
    verify,
)
from responder.security.redact import scrub_each
from responder.storage.bulk import copies_utf8, copy_encoded, insert_rows, table_of

AUDIT_LOCK_ID = 727_001


class AuditRecord(SQLModel, table=True):
    __tablename__ = "audit_log"

    seq: int = Field(primary_key=True)
    at: datetime
    actor: str = Field(max_length=200)
    action: str = Field(max_length=100, index=True)
    subject: str = Field(max_length=200, index=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    key_id: str | None = Field(default=None, max_length=32)  # None: legacy, unkeyed SHA-256

    def entry(self) -> Entry:
        at = self.at if self.at.tzinfo else self.at.replace(tzinfo=UTC)
        return Entry(self.seq, at, self.actor, self.action, self.subject, self.data, self.key_id)


@dataclass(frozen=True)
class Keyring:
    """The key new records are hashed with, and every key (old ones too) by id to verify."""

    current: ChainKey | None = None
    old: tuple[ChainKey, ...] = ()
    by_id: Mapping[str, ChainKey] = field(init=False)

    def __post_init__(self) -> None:
        keys = {k.id: k for k in self.old}
        if self.current is not None:
            keys[self.current.id] = self.current
        object.__setattr__(self, "by_id", keys)


_KEYRINGS: weakref.WeakKeyDictionary[Engine, Keyring] = weakref.WeakKeyDictionary()


def use_keys(engine: Engine, keyring: Keyring) -> None:
    """Hash and verify the audit chain of `engine`'s database with these keys."""
    _KEYRINGS[engine] = keyring


def keyring(session: Session) -> Keyring:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else getattr(bind, "engine", None)
    found = _KEYRINGS.get(engine) if isinstance(engine, Engine) else None
    return found or Keyring()


def lock_chain(session: Session) -> None:
    """Serialize appenders for the rest of the transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": AUDIT_LOCK_ID})


def append(
    session: Session,
    entries: list[tuple[str, str, str, dict[str, Any]]],
    *,
    at: datetime | None = None,
) -> int:
    """Append (actor, action, subject, data) records in order, inside the caller's transaction.

    One lock, one read of the head and one bulk write however many records (COPY on
    PostgreSQL, `storage.bulk`): the sink appends a batch's records at once. The hashes (and
    on PostgreSQL the rows) come from the compiled path where it is built and takes the data
    (`audit.native`), else from `chain.link` here. Returns the sequence number of the last
    record.
    """
    if not entries:
        return 0
    key = keyring(session).current
    key_id = None if key is None else key.id
    # masked before the lock: other appenders wait from the lock to this one's commit
    scrubbed = scrub_each([raw for _, _, _, raw in entries])  # one search for the batch
    lock_chain(session)
    last = session.exec(
        select(AuditRecord.seq, AuditRecord.hash).order_by(col(AuditRecord.seq).desc()).limit(1)
    ).first()
    first, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    now = at or datetime.now(UTC)
    records = [
        (actor, action, subject, clean)
        for (actor, action, subject, _), clean in zip(entries, scrubbed, strict=True)
    ]
    table = table_of(AuditRecord)
    copied = copies_utf8(session)
    compiled = native.chained(records, first=first, prev=prev, at=now, key=key, copy=copied)
    if compiled is not None and compiled.copy is not None:
        copy_encoded(session, table, native.COLUMNS, compiled.copy)
        return first + len(entries) - 1

    def rows() -> Iterator[dict[str, Any]]:  # computed while COPY sends the ones before
        nonlocal prev
        for seq, (actor, action, subject, clean) in enumerate(records, start=first):
            if compiled is None:
                data = as_stored(clean)  # hash what the DB returns
                digest = link(prev, Entry(seq, now, actor, action, subject, data), key)
            else:  # (plain JSON data: stored as it is)
                data, digest = clean, compiled.hashes[seq - first]
            yield {
                "seq": seq,
                "at": now,
                "actor": actor,
                "action": action,
                "subject": subject,
                "data": data,
                "prev_hash": prev,
                "hash": digest,
                "key_id": key_id,
            }
            prev = digest

    insert_rows(session, table, rows())
    return first + len(entries) - 1


def as_stored(data: dict[str, Any]) -> dict[str, Any]:
    """`data` as the database hands it back (JSON), so the hash is of what is read later.

    Data made of plain JSON values (the sink's records) already is; anything else (tuples,
    enums, datetimes, non-finite floats, ...) takes the JSON round trip."""
    if plain_json(data, finite_floats=True):
        return data
    return json.loads(json.dumps(data, default=str))  # type: ignore[no-any-return]


def _rows(session: Session, batch: int = 5000, after: int = 0) -> Iterator[tuple[Entry, str, str]]:
    while True:
        rows = session.exec(
            select(AuditRecord)
            .where(AuditRecord.seq > after)
            .order_by(col(AuditRecord.seq))
            .limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            yield row.entry(), row.prev_hash, row.hash
        after = rows[-1].seq
        session.expunge_all()


def records_since(
    session: Session, since: datetime | None = None
) -> Iterator[tuple[Entry, str, str]]:
    """(entry, prev_hash, hash) of every record from the first one stamped at or after `since`
    (all records when None) to the newest, in seq order: a contiguous stretch of the chain."""
    after = 0
    if since is not None:
        first = session.exec(
            select(AuditRecord.seq)
            .where(AuditRecord.at >= since)
            .order_by(col(AuditRecord.seq))
            .limit(1)
        ).first()
        if first is None:
            return
        after = first - 1
    yield from _rows(session, after=after)


def verify_chain(session: Session) -> tuple[int, Broken | None]:
    return verify(_rows(session), keyring(session).by_id)


def record_problem(session: Session, record: AuditRecord) -> str | None:
    """Why one record does not match its own hash (None: it does), with the engine's keys."""
    expected, unknown = expected_hash(record.prev_hash, record.entry(), keyring(session).by_id)
    if unknown is not None:
        return unknown
    return None if expected == record.hash else "does not match its own hash"


def unkeyed_count(session: Session) -> int:
    """Records hashed without a key (legacy): a database writer could have recomputed them."""
    count = session.exec(
        select(func.count()).select_from(AuditRecord).where(col(AuditRecord.key_id).is_(None))
    ).one()
    return int(count)


def head(session: Session) -> tuple[int, str] | None:
    """The newest record's (seq, hash): write it down elsewhere to detect truncation later."""
    row = session.exec(
        select(AuditRecord.seq, AuditRecord.hash).order_by(col(AuditRecord.seq).desc()).limit(1)
    ).first()
    return None if row is None else (row[0], row[1])


def check_anchor(session: Session, seq: int, digest: str) -> str | None:
    """Why a head written down earlier no longer holds (None: it does).

    A hash chain alone cannot notice that its newest records were deleted; a head kept outside
    the database can: the record must still exist with the same hash.
    """
    row = session.exec(select(AuditRecord.hash).where(AuditRecord.seq == seq)).first()
    if row is None:
        return f"record {seq} is gone: the log was truncated after the anchor was taken"
    if row != digest:
        return f"record {seq} no longer has the anchored hash: the chain was re-chained"
    return None


def check_anchors(session: Session, anchors: list[Anchor], skipped: int = 0) -> AnchorCheck:
    """Check the newest anchors against the chain: a record gone after an anchor was taken
    (truncated), a record whose hash is not the anchored one (re-chained), anchors past the
    newest record; and count the records after the newest anchor."""
    check = AnchorCheck(skipped=skipped)
    chosen = newest(anchors)
    top = head(session)
    for anchor in chosen:
        check.checked += 1
        problem = check_anchor(session, anchor.seq, anchor.hash)
        if problem is not None:
            check.problems.append(
                f"anchor {anchor.seq} (taken {anchor.at:%Y-%m-%d %H:%M}Z): {problem}"
            )
    if chosen:
        check.newest = chosen[0]
        check.unanchored = max(0, (top[0] if top else 0) - chosen[0].seq)
    return check
