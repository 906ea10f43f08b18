"""The audit log table and its two operations: append (serialized) and read for verification.

Appends take a database-wide lock first (PostgreSQL advisory transaction lock; SQLite's write
lock via BEGIN IMMEDIATE), so concurrent writers cannot fork the chain. Every record's data is
masked (`security.redact.scrub`: secrets by key and by value) before it is hashed and stored,
whoever the caller is. On PostgreSQL a trigger
installed by the migrations refuses UPDATE and DELETE on the table (on SQLite too, since 0004).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, insert, text
from sqlmodel import Field, Session, SQLModel, col, select

from responder.audit.chain import GENESIS, Broken, Entry, link, verify
from responder.security.redact import scrub

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

    def entry(self) -> Entry:
        at = self.at if self.at.tzinfo else self.at.replace(tzinfo=UTC)
        return Entry(self.seq, at, self.actor, self.action, self.subject, self.data)


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

    One multi-row INSERT (SQLAlchemy Core): building ORM objects cost ~150 µs a record.
    Returns the sequence number of the last record.
    """
    if not entries:
        return 0
    lock_chain(session)
    last = session.exec(
        select(AuditRecord.seq, AuditRecord.hash).order_by(col(AuditRecord.seq).desc()).limit(1)
    ).first()
    seq, prev = (last[0], last[1]) if last else (0, GENESIS)
    now = at or datetime.now(UTC)
    rows = []
    for actor, action, subject, raw in entries:
        seq += 1
        data = json.loads(json.dumps(scrub(raw), default=str))  # hash what the DB returns
        digest = link(prev, Entry(seq, now, actor, action, subject, data))
        rows.append(
            {
                "seq": seq,
                "at": now,
                "actor": actor,
                "action": action,
                "subject": subject,
                "data": data,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    session.execute(insert(AuditRecord), rows)
    return seq


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
    return verify(_rows(session))


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
        return f"record {seq} no longer has the anchored hash"
    return None
