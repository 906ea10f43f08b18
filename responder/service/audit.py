"""Audit log queries: records by subject, actor, action and time; chain verification."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlmodel import Session, col, select

from responder.audit.store import AuditRecord, check_anchor, unkeyed_count, verify_chain
from responder.service.errors import Invalid
from responder.service.pages import Cursor, decode, encode
from responder.service.views import AuditView, Page

ANCHOR = re.compile(r"^(\d{1,18}):([0-9a-f]{64})$")


def query_audit(
    session: Session,
    *,
    subject: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    order: Literal["seq", "-seq"] = "seq",
    limit: int = 100,
    cursor: str | None = None,
) -> Page[AuditView]:
    stmt = select(AuditRecord)
    for column, value in (
        (AuditRecord.subject, subject),
        (AuditRecord.actor, actor),
        (AuditRecord.action, action),
    ):
        if value is not None:
            stmt = stmt.where(col(column) == value)
    if since is not None:
        stmt = stmt.where(col(AuditRecord.at) >= since)
    if until is not None:
        stmt = stmt.where(col(AuditRecord.at) <= until)
    seq = col(AuditRecord.seq)
    if cursor is not None:
        after = decode(cursor, order)
        if not isinstance(after.value, int) or isinstance(after.value, bool):
            raise Invalid("invalid cursor")
        stmt = stmt.where(seq < after.value if order == "-seq" else seq > after.value)
    stmt = stmt.order_by(seq.desc() if order == "-seq" else seq.asc()).limit(limit + 1)
    rows = list(session.exec(stmt).all())
    more, rows = len(rows) > limit, rows[:limit]
    next_cursor = None
    if more and rows:
        next_cursor = encode(Cursor(sort=order, value=rows[-1].seq, id=str(rows[-1].seq)))
    return Page[AuditView](items=[AuditView.of(r) for r in rows], next_cursor=next_cursor)


class Verification(BaseModel):
    ok: bool
    records: int
    broken_seq: int | None = None
    reason: str | None = None
    anchor: str | None = None
    unkeyed: int = 0  # legacy records hashed without the chain key: a DB writer could redo them


def parse_anchor(text: str) -> tuple[int, str]:
    match = ANCHOR.match(text)
    if match is None:
        raise Invalid("anchor must be SEQ:HASH as `responder audit head` prints it")
    return int(match.group(1)), match.group(2)


def verify(session: Session, anchor: str | None = None) -> Verification:
    """Recompute the chain; with an anchor taken earlier, also detect deleted newest records."""
    expected = parse_anchor(anchor) if anchor is not None else None
    count, broken = verify_chain(session)
    if broken is not None:
        return Verification(
            ok=False, records=count, broken_seq=broken.seq, reason=broken.reason, anchor=anchor
        )
    if expected is not None:
        problem = check_anchor(session, *expected)
        if problem is not None:
            return Verification(ok=False, records=count, reason=problem, anchor=anchor)
    return Verification(ok=True, records=count, anchor=anchor, unkeyed=unkeyed_count(session))
