"""Nudges between processes through PostgreSQL's LISTEN/NOTIFY: "runs were created, look now".

On PostgreSQL the default worker stores incidents in several processes (a sink per core) while
one runner advances the runs. A sink in the runner's own process wakes it in memory; a sink
elsewhere calls `notify` in the transaction that created runs, and PostgreSQL delivers that
notification to every listener once the transaction commits (never before, never for a
transaction rolled back). `Listener` holds one connection that listens and calls `wake` for
each notification.

A notification is a hint, not a message: a lost one (the listener reconnecting, the server
restarting) costs at most the runner's poll interval, and a notification from another
deployment sharing the database costs one early look. Elsewhere (SQLite: one process stores)
`notify` does nothing and no listener is started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import psycopg
import structlog
from psycopg import sql
from sqlalchemy import URL, text
from sqlalchemy.orm import Session

log = structlog.get_logger(__name__)

RUNS_CHANNEL = "responder_runs"
RETRY_S = (1.0, 30.0)  # first and longest wait before the listener connects again


def notify(session: Session, channel: str) -> None:
    """Notify `channel`'s listeners once the caller's transaction commits (PostgreSQL only)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})


def listens(url: URL) -> bool:
    """Whether the database at `url` can deliver notifications (PostgreSQL)."""
    return url.get_backend_name() == "postgresql"


class Listener:
    """Calls `wake()` for each notification on `channel`, and once each time it (re)connects
    (what was committed while it was not listening). Runs until cancelled; a dropped
    connection is opened again after `RETRY_S`, doubling up to its longest."""

    def __init__(self, url: URL, channel: str, wake: Callable[[], None]) -> None:
        # libpq's form of the engine's URL (the driver name dropped); never logged
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.channel = channel
        self.wake = wake
        self.connected = asyncio.Event()  # listening now (tests wait for it)

    async def run(self) -> None:
        delay, failing = RETRY_S[0], False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    if failing:
                        log.info("listening for new runs again", channel=self.channel)
                    delay, failing = RETRY_S[0], False
                    self.connected.set()
                    self.wake()
                    async for _ in conn.notifies():
                        self.wake()
            except Exception as exc:  # a hint only: whatever breaks it, the runner still polls
                if not failing:  # said once an outage; the runner still polls meanwhile
                    log.warning(
                        "cannot listen for new runs; the runner polls until it can",
                        error=f"{type(exc).__name__}: {str(exc)[:200]}",
                        retry_s=delay,
                    )
                failing = True
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_S[1])
