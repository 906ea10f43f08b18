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
import time
from collections.abc import Callable

import psycopg
import structlog
from psycopg import sql
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

log = structlog.get_logger(__name__)

RUNS_CHANNEL = "responder_runs"
RETRY_S = (1.0, 30.0)  # first and longest wait before the listener connects again
PROBE_S = 60.0  # a quiet connection is asked to answer this often (a half-open one fails)
PROBE_TIMEOUT_S = 10.0
# libpq's, where the URL sets none: a peer that vanished is noticed within about a minute,
# and the connection is named in pg_stat_activity
KEEPALIVES: dict[str, str | int] = {
    "application_name": "responder runs listener",
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def notify(session: Session, channel: str) -> None:
    """Notify `channel`'s listeners once the caller's transaction commits (PostgreSQL only)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})


def listens(engine: Engine) -> bool:
    """Whether the engine's database can deliver notifications (PostgreSQL)."""
    return engine.dialect.name == "postgresql"


class Listener:
    """Calls `wake()` for each notification on `channel`, and once each time it (re)connects
    (what was committed while it was not listening). Runs until cancelled. It connects with
    the engine's own connection arguments; a dropped connection is opened again after
    `RETRY_S`, doubling up to its longest, and a quiet one is probed every `PROBE_S`."""

    def __init__(self, engine: Engine, channel: str, wake: Callable[[], None]) -> None:
        _, options = engine.dialect.create_connect_args(engine.url)
        options.pop("context", None)  # the engine's adapters: SQLAlchemy's own
        self._options = {**KEEPALIVES, **options}  # holds the password: never logged
        self.channel = channel
        self.wake = wake
        self.connected = asyncio.Event()  # listening now (tests wait for it)
        self.backend_pid: int | None = None  # the server process of the last connection

    async def run(self) -> None:
        delay, failing = RETRY_S[0], False
        while True:
            since = time.monotonic()
            try:
                await self._listen()
            except (psycopg.Error, OSError, TimeoutError) as exc:
                if time.monotonic() - since > RETRY_S[1]:  # it had held: this drop is news
                    delay, failing = RETRY_S[0], False
                if not failing:  # said once an outage; the runner still polls meanwhile
                    log.warning(
                        "cannot listen for new runs; the runner polls until it can",
                        error=f"{type(exc).__name__}: {str(exc)[:200]}",
                        retry_s=delay,
                    )
                failing = True
            except Exception:  # a bug, not an outage: said every time, the runner still polls
                log.exception("listening for new runs failed; the runner polls meanwhile")
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_S[1])

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(autocommit=True, **self._options) as conn:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            self.backend_pid = conn.info.backend_pid
            self.connected.set()
            self.wake()
            while True:
                async for _ in conn.notifies(timeout=PROBE_S):
                    self.wake()
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    await conn.execute("SELECT 1")
