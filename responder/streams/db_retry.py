"""Database calls of the stages: wait out an outage, but never wait forever on a bad record.

An `OperationalError` usually means the database is down or locked: the stage waits and tries
again rather than dropping anything. But some of them are about the data (a value over a
PostgreSQL limit, say). So after a few failed attempts the database is asked `SELECT 1`: if it
answers, the call itself is the problem and the error is raised for the stage to isolate and
dead-letter the record; if it does not, the stage keeps waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import structlog
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

log = structlog.get_logger(__name__)

T = TypeVar("T")


def reachable(engine: Engine) -> bool:
    """Whether the database answers a trivial query."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


async def call_with_db_retry(
    engine: Engine,
    call: Callable[[], T],
    *,
    what: str,
    attempts_before_check: int = 5,
    first_delay: float = 0.5,
    max_delay: float = 10.0,
) -> T:
    """Run `call` in a thread; retry on OperationalError while the database is unavailable."""
    delay = first_delay
    attempts = 0
    while True:
        try:
            return await asyncio.to_thread(call)
        except OperationalError as exc:
            attempts += 1
            if attempts >= attempts_before_check and await asyncio.to_thread(reachable, engine):
                raise  # the database answers: this call is what fails
            log.warning(
                "database unavailable, retrying", what=what, error=str(exc)[:200], delay=delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
