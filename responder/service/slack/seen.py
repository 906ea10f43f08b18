"""The replay guard: the clicks taken in the last minutes, in SQL (it survives restarts and is
shared by every process that takes clicks). Bounded: a row lives `keep` (twice the tolerance a
click's age is checked against), and each insert deletes the rows past it."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Column, DateTime, delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col


class SlackSeen(SQLModel, table=True):
    __tablename__ = "slack_seen"

    key: str = Field(primary_key=True, max_length=64)  # Click.replay_key
    seen_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))


def first_time(session: Session, key: str, *, at: datetime, keep: timedelta) -> bool:
    """Record `key`; False if it was recorded before (a replay). Commits."""
    session.execute(delete(SlackSeen).where(col(SlackSeen.seen_at) < at - keep))
    session.commit()
    if session.get(SlackSeen, key) is not None:
        return False
    session.add(SlackSeen(key=key, seen_at=at))
    try:
        session.commit()
    except IntegrityError:  # the same click, inserted by another request just now
        session.rollback()
        return False
    return True
